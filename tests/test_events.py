"""What Flower sees: every row's task events reach an event receiver from a real worker (received with job, row and
title, started, retried, succeeded), one task id per row across its retries, and they travel in batches
(tasks.row_tasks.EventBatches), not one Redis message per event."""

from __future__ import annotations

import ast
import base64
import json
import time
from collections import defaultdict

import redis

from tasks.enqueue import enqueue
from tasks.row_tasks import task_id
from tasks.rowstore import RowStore
from tests.helpers import HOST, plan_of, wait_final, write_catalog


def events_of(message: dict) -> list[dict]:
    """The Celery events in one message published on Redis (a batch is a list of events)."""
    envelope = json.loads(message["data"])
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    decoded = json.loads(body)
    return decoded if isinstance(decoded, list) else [decoded]


def test_every_rows_task_events_reach_a_receiver_in_batches(sandbox_factory, make_env, workers, redis_url, tmp_path):
    sandbox = sandbox_factory(error_rate=0.25, seed=3)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("*celeryev*")
    workers.start(make_env(sandbox), 1, concurrency=8)
    store = RowStore.from_url(redis_url)
    job_id = enqueue(store, plan_of(*write_catalog(tmp_path / "cat", 24)), sandbox.url, HOST)
    by_task: dict[str, list[dict]] = defaultdict(list)
    messages = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message is None:
            if store.is_final(job_id) and all(any(e["type"] == "task-succeeded" for e in by_task[task_id(job_id, r)])
                                              for r in store.states(job_id)):
                break
            continue
        events = [e for e in events_of(message) if str(e.get("type", "")).startswith("task-")]
        if events:
            messages += 1
        for event in events:
            by_task[event["uuid"]].append(event)
    pubsub.close()
    wait_final(store, job_id)
    rows = {r.row_id: r for r in store.rows(job_id)}
    assert {task_id(job_id, r) for r in rows} == set(by_task)  # one task per row, whatever its retries
    retried = 0
    for row_id, row in rows.items():
        events = by_task[task_id(job_id, row_id)]
        types = [e["type"] for e in events]
        assert types.count("task-succeeded") == 1 and row.state.value == "succeeded", (
            row_id, row.state, row.attempts, types, workers.logs()[-4000:])  # what a failure needs to be explained
        # Flower's result column: one line, the row, its state and the ids it got (tasks.row_tasks.shown).
        succeeded = next(e for e in events if e["type"] == "task-succeeded")
        assert succeeded["result"] == f"'{row_id} succeeded {json.dumps(row.result, separators=(', ', ': '))}'"
        received = [e for e in events if e["type"] == "task-received"]
        assert ast.literal_eval(received[0]["args"]) == (job_id, row_id, row.title)
        assert len(received) == row.attempts and types.count("task-retried") == row.attempts - 1
        assert sorted(e["retries"] for e in received) == list(range(row.attempts))  # Flower's retries column
        retried += row.attempts > 1
    total = sum(len(v) for v in by_task.values())
    assert retried and total >= 3 * len(rows)
    # In batches, not one message per event. (A row's attempt makes three events; how many share a 0.1 s batch
    # depends on the machine's load: a suite run saw 87 events in 32 messages, so "a third" was too tight.)
    assert messages <= total / 2, (messages, total)


def test_an_event_kept_back_after_a_failed_publish_goes_out_without_another_event(redis_url):
    """Celery keeps an event whose publish failed in its dispatcher's outbound buffer and sends it with the next
    flush; a flush came only with the next task event, which at the end of an import never comes (Flower then shows
    the row as never finished). The worker's loop flushes every EVENTS_SWEEP_S whatever happens."""
    from types import SimpleNamespace

    from celery.events import Event
    from kombu.asynchronous import Hub

    from tasks.celery_app import app
    from tasks.row_tasks import EventBatches

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("*celeryev*")
    with app.connection_for_write(redis_url) as conn:
        dispatcher = app.events.Dispatcher(conn, hostname="sweep@test", enabled=True, buffer_group=["task"])
        # what _publish leaves when the broker refused the event
        dispatcher._outbound_buffer.append((Event("task-succeeded", uuid="kept-back"), "task.succeeded"))
        consumer = SimpleNamespace(hub=Hub(), event_dispatcher=dispatcher)
        consumer._flush_events = dispatcher.flush
        step = EventBatches(consumer)
        step.start(consumer)
        try:
            seen: list[dict] = []
            deadline = time.monotonic() + 20
            while not any(e.get("uuid") == "kept-back" for e in seen) and time.monotonic() < deadline:
                consumer.hub.fire_timers(min_delay=0)  # the worker's loop, turning
                message = pubsub.get_message(timeout=0.1)
                if message is not None:
                    seen += events_of(message)
        finally:
            step.stop(consumer)
            pubsub.close()
            dispatcher.close()
    assert [e["type"] for e in seen if e.get("uuid") == "kept-back"] == ["task-succeeded"]
    assert not dispatcher._outbound_buffer
