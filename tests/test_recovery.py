"""Finding rows whose task message was lost, without touching rows that are merely waiting their turn.

Real redis-server (the suite's own); the first tests run no worker, so the published messages stay in the
queue where the test can remove some, as a crash would.
"""

from __future__ import annotations

import base64
import json
import time

from tasks.enqueue import enqueue
from tasks.recovery import UNACKED_KEY, broker_row_messages, republish_stuck, stuck_rows
from tasks.rowstore import RowStore
from tests.helpers import HOST, assert_consistent, plan_of, wait_final, write_catalog


def _queued_job(redis_url, tmp_path, courses=20):
    store = RowStore.from_url(redis_url)
    job_id = enqueue(store, plan_of(*write_catalog(tmp_path / "cat", courses)), "http://127.0.0.1:9", HOST)
    return store, job_id


def test_rows_whose_message_is_in_the_broker_are_not_stuck(redis_url, tmp_path):
    store, job_id = _queued_job(redis_url, tmp_path)
    # A message a worker holds (delivered, not acknowledged) sits in kombu's unacked hash: still present.
    raw = store.r.rpop("tagmango")
    store.r.hset(UNACKED_KEY, "tag-1", json.dumps([json.loads(raw), "", "tagmango"]))
    assert len({row for job, row, _ in broker_row_messages(store) if job == job_id}) == 20
    assert stuck_rows(store, job_id, idle_for=0) == []


def test_lost_messages_are_found_and_republished_once(redis_url, tmp_path):
    store, job_id = _queued_job(redis_url, tmp_path)
    lost = [json.loads(store.r.lpop("tagmango")) for _ in range(3)]  # as if Redis lost its last writes
    lost_rows = {json.loads(base64.b64decode(m["body"]))[0][1] for m in lost}
    assert stuck_rows(store, job_id, idle_for=3600) == []  # not idle long enough yet
    assert {r.row_id for r in stuck_rows(store, job_id, idle_for=0)} == lost_rows
    assert republish_stuck(store, job_id, idle_for=0) == 3
    present = {(row, gen) for job, row, gen in broker_row_messages(store) if job == job_id}
    assert len(present) == 20
    assert all((row, store.generation(job_id, row)) in present for row in lost_rows)
    assert stuck_rows(store, job_id, idle_for=0) == []
    assert store.counts(job_id)["n_recovered"] == 3


def test_a_long_backlog_is_not_mistaken_for_stuck_rows(sandbox_factory, make_env, workers, redis_url, tmp_path):
    """Rows wait for the rate limiter far longer than the idle limit; sweeping must not republish them
    (that churned the queue and wasted reserved slots)."""
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
