"""Finding rows whose task message was lost, without touching rows that are merely waiting their turn.

Real redis-server (the suite's own); the first tests run no worker, so the queued rows stay parked where the
test can remove some, as a crash would.
"""

from __future__ import annotations

import json
import time

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
