"""Finding rows whose task message was lost, without touching rows that are merely waiting their turn.

Real redis-server (the suite's own); the first tests run no worker, so the queued rows stay parked where the
test can remove some, as a crash would.
"""

from __future__ import annotations

import json
import time

import pytest

from tasks.enqueue import enqueue
from tasks.ledger import target_id
from tasks.park import park_key, parse
from tasks.recovery import UNACKED_KEY, pending_row_messages, republish_stuck, stuck_rows
from tasks.rowstore import RowStore
from tests.helpers import HOST, assert_consistent, plan_of, wait_final, write_catalog


def _queued_job(redis_url, tmp_path, courses=20):
    store = RowStore.from_url(redis_url)
    job_id = enqueue(store, plan_of(*write_catalog(tmp_path / "cat", courses)), "http://127.0.0.1:9", HOST)
    return store, job_id


def _park(store: RowStore) -> str:
    return park_key(target_id("http://127.0.0.1:9", HOST))


def test_parked_rows_and_rows_whose_message_is_in_the_broker_are_not_stuck(redis_url, tmp_path):
    store, job_id = _queued_job(redis_url, tmp_path)
    assert store.r.zcard(_park(store)) == 20 and store.r.llen("tagmango") == 0  # parked, waiting for their slot
    assert stuck_rows(store, job_id, idle_for=0) == []
    # Two handed to the queue by the dispatcher; a worker holds one (delivered, not acknowledged: kombu's hash).
    entries = store.r.zrange(_park(store), 0, 1)
    store.r.zrem(_park(store), *entries)
    for i, entry in enumerate(entries):
        _op, _job, row_id, title = parse(entry)
        message = {"headers": {"task": "tagmango.create_course"}, "properties": {},
                   "body": json.dumps([[job_id, row_id, title], {"gen": 0}, {}])}
        if i == 0:
            store.r.lpush("tagmango", json.dumps(message))
        else:
            store.r.hset(UNACKED_KEY, "tag-1", json.dumps([message, "", "tagmango"]))
    job = store.job(job_id)
    assert len({row for job_, row, _ in pending_row_messages(store, job) if job_ == job_id}) == 20
    assert stuck_rows(store, job_id, idle_for=0) == []


def test_a_job_whose_active_rows_may_all_have_their_message_is_swept_without_reading_its_rows(redis_url, tmp_path,
                                                                                              monkeypatch):
    """Parked rows and messages at least as many as the active rows: no row is read (a queued million-row job took a
    worker 20 s of CPU every sweep); one fewer and the rows are read, and the lost one is found."""
    store, job_id = _queued_job(redis_url, tmp_path)

    def read_rows(*args, **kwargs):
        raise AssertionError("rows read")

    with monkeypatch.context() as patched:
        patched.setattr(RowStore, "states", read_rows)
        patched.setattr(RowStore, "rows", read_rows)
        assert stuck_rows(store, job_id, idle_for=0) == []
        [lost] = store.r.zrange(_park(store), 0, 0)
        store.r.zrem(_park(store), lost)
        with pytest.raises(AssertionError, match="rows read"):
            stuck_rows(store, job_id, idle_for=0)
    assert [r.row_id for r in stuck_rows(store, job_id, idle_for=0)] == [parse(lost)[2]]


def test_lost_rows_are_found_and_queued_again_once(redis_url, tmp_path):
    store, job_id = _queued_job(redis_url, tmp_path)
    lost = store.r.zrange(_park(store), 0, 2)
    store.r.zrem(_park(store), *lost)  # as if Redis lost the last writes, or a dispatcher died before publishing
    lost_rows = {parse(entry)[2] for entry in lost}
    assert stuck_rows(store, job_id, idle_for=3600) == []  # not idle long enough yet
    assert {r.row_id for r in stuck_rows(store, job_id, idle_for=0)} == lost_rows
    assert republish_stuck(store, job_id, idle_for=0) == 3
    present = {(row, gen) for job, row, gen in pending_row_messages(store, store.job(job_id)) if job == job_id}
    assert len(present) == 20
    assert all((row, store.generation(job_id, row)) in present for row in lost_rows)
    assert all(store.generation(job_id, row) == 1 for row in lost_rows)  # an old message turning up is stale
    assert stuck_rows(store, job_id, idle_for=0) == []
    assert store.counts(job_id)["n_recovered"] == 3


def test_a_long_backlog_is_not_mistaken_for_stuck_rows(sandbox_factory, make_env, workers, redis_url, tmp_path):
    """Rows wait for the rate limiter far longer than the idle limit, parked; sweeping must not queue them
    again (that would churn them and waste slots)."""
    sandbox = sandbox_factory()
    workers.start(make_env(sandbox, TAGMANGO_RATE_LIMIT="40"), 2)  # 60 rows take about 15 s
    store = RowStore.from_url(redis_url)
    job_id = enqueue(store, plan_of(*write_catalog(tmp_path / "cat", 60)), sandbox.url, HOST)
    deadline = time.monotonic() + 90
    while not store.is_final(job_id) and time.monotonic() < deadline:
        republish_stuck(store, job_id, idle_for=1.0)
        time.sleep(0.5)
    wait_final(store, job_id, timeout=5)
    assert assert_consistent(store, job_id)["succeeded"] == 60
    assert store.counts(job_id).get("n_recovered", 0) == 0
    assert sandbox.stats()["requests"] == 60  # one request per row: no slot wasted on a churned message


def test_resume_pages_through_a_job_and_sends_each_unfinished_row_once(redis_url, tmp_path, monkeypatch):
    """``resume`` (every worker gone, e.g. after Ctrl-C) a page at a time (3 rows per page here): every active row
    that is not waiting gets a new generation and one parked message, in input order; the chapters of a course
    that finished before its dependents were released are released and sent; the others keep waiting."""
    from tasks import recovery
    from tasks.rows import RowState

    monkeypatch.setattr(recovery, "CHUNK", 3)
    store = RowStore.from_url(redis_url)
    job_id = enqueue(store, plan_of(*write_catalog(tmp_path / "cat", 7, chapters_per_course=1)),
                     "http://127.0.0.1:9", HOST)
    store.r.delete(_park(store))  # the old messages are gone (or stale after resume, either way)
    rows = {r.row_id: r for r in store.rows(job_id)}
    courses = [r for r in rows.values() if r.op == "create_course"]
    chapters = {r.parent: r for r in rows.values() if r.parent}
    assert len(courses) == 7 and len(chapters) == 7 and all(c.waiting_for_parent for c in chapters.values())
    done = courses[1]  # finished, but its worker died before it released its chapter
    done.state = RowState.RUNNING
    assert store.save(job_id, done)
    done.state, done.result = RowState.SUCCEEDED, {"course_id": "c1", "first_chapter": "ch1", "second_chapter": "ch2"}
    assert store.save(job_id, done)

    assert recovery.resume(store, job_id) == 6  # the unfinished courses (the released chapter is sent as well)
    parked = [parse(entry)[2] for entry in store.r.zrange(_park(store), 0, -1)]
    released = chapters[done.row_id].row_id
    assert parked == [c.row_id for c in courses if c is not done] + [released]  # input order, each once
    after = {r.row_id: r for r in store.rows(job_id)}
    assert all(store.generation(job_id, row_id) == 1 for row_id in parked)
    assert after[done.row_id].state is RowState.SUCCEEDED and store.generation(job_id, done.row_id) == 0
    assert after[released].ids.get("chapter_id") == "ch1" and not after[released].waiting_for_parent
    waiting = [c.row_id for p, c in chapters.items() if p != done.row_id]
    assert all(after[row_id].waiting_for_parent and store.generation(job_id, row_id) == 0 for row_id in waiting)
    assert assert_consistent(store, job_id, final=False)["queued"] == 13
