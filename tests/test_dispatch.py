"""Dispatching parked rows (tasks.dispatch) against the suite's real Redis, ticking by hand: no worker here."""

from __future__ import annotations

import time

import pytest

from tasks.dispatch import Dispatcher
from tasks.job import Job
from tasks.ledger import target_id
from tasks.limiter import RateLimiter
from tasks.park import give_back, park, park_key
from tasks.rowstore import RowStore

A, B = ("http://api", "a.example.com"), ("http://api", "b.example.com")


def job(job_id: str, target: tuple[str, str]) -> Job:
    return Job(job_id, api_url=target[0], host=target[1])


@pytest.fixture
def dispatcher(redis_url):
    store = RowStore.from_url(redis_url)
    d = Dispatcher(store, lambda api_url, host: f"cred-{host}", limit=10, window=1.0)
    assert d.take_lock()
    return store, d


def tick(d: Dispatcher) -> list:
    got: list = []
    d._targets_read = 0  # see targets parked since the last tick
    d.tick(got.extend)
    return got


def test_each_credential_is_paced_on_its_own_and_a_backlog_slows_no_other(dispatcher):
    store, d = dispatcher
    r = store.r
    park(store, job("job-a", A), [("create_course", f"c:{i}", f"A{i}") for i in range(200)])  # a big backlog
    park(store, job("job-b", B), [("create_course", f"c:{i}", f"B{i}") for i in range(5)])
    r.hset("tm:job:job-b:gen", "c:0", 3)
    handed: list = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        handed += tick(d)
        time.sleep(0.01)
    by_job = {job: [h for h in handed if h[1] == job] for job in ("job-a", "job-b")}
    # (1 s + the assumed 0.5 s flight) / 10 per slot: about 7 a second each, B's five all out, in input order
    assert 6 <= len(by_job["job-a"]) <= 9 and [h[2] for h in by_job["job-b"]] == [f"c:{i}" for i in range(5)]
    assert by_job["job-b"][0][4] == 3 and by_job["job-b"][1][4] == 0  # the generation at dispatch
    slots = [h[5][0] for h in by_job["job-a"]]
    assert all(b - a == pytest.approx(0.15, abs=0.002) for a, b in zip(slots, slots[1:], strict=False))
    assert by_job["job-a"][0][5][1] == target_id(*A) and by_job["job-a"][0][6] == 0  # attempts so far
    assert r.zcard(park_key(target_id(*B))) == 0 and target_id(*B) not in r.hgetall("tm:park:targets")


def test_rows_put_back_wait_their_time_then_go_first_and_unsent_rows_give_their_slot_back(dispatcher):
    store, d = dispatcher
    park(store, job("job", A), [("create_course", f"c:{i}", f"T{i}") for i in range(20)])
    park(store, job("job", A), [("create_course", "c:99", "Retried")], delay=0.3)
    first = tick(d)
    assert [h[2] for h in first] == ["c:0"]
    time.sleep(0.35)
    assert tick(d)[0][2] == "c:99"  # due now: ahead of the rows queued before it
    time.sleep(0.2)
    for _ in range(5):
        give_back(store, target_id(*A))  # five dispatched rows ended without sending (already done, say)
    assert len(tick(d)) == 6  # their slots go to the next rows at once, plus the row whose slot has come


def test_no_rows_are_handed_out_during_a_cool_down_or_when_the_budget_is_full(dispatcher):
    store, d = dispatcher
    r = store.r
    park(store, job("job", A), [("create_course", f"c:{i}", f"T{i}") for i in range(20)])
    limiter = RateLimiter(r, limit=10, window=1.0)
    cred = "cred-a.example.com"
    for _ in range(4):
        limiter.done(cred, limiter.admit(cred).flight)
    assert limiter.refused(cred, limiter.admit(cred).flight, pause=0.5).learned == 4  # the API's limit: 4 per window
    assert tick(d) == []
    time.sleep(1.05)
    assert len(tick(d)) == 1
    for _ in range(4):
        limiter.admit(cred)  # the learned budget in flight
    assert tick(d) == []


def test_only_the_lock_owner_dispatches(dispatcher):
    store, d = dispatcher
    r = store.r
    other = Dispatcher(store, lambda api_url, host: "x", limit=10, window=1.0)
    assert not other.take_lock()
    park(store, job("job", A), [("create_course", "c:1", "T")])
    assert other.tick(lambda rows: None) is None and r.zcard(park_key(target_id(*A))) == 1


def test_a_ticks_rows_go_out_as_celery_messages_in_one_round_trip(redis_url, monkeypatch):
    """What the dispatcher publishes (tasks.row_tasks.send): Celery's own task messages, one per row, by task name,
    with the task id of the row, its attempts as Celery's retries, and argsrepr/kwargsrepr exactly as Celery's
    saferepr would make them (Flower shows those); all the rows of one tick in one Redis round trip."""
    import json

    import redis.connection
    from celery.utils.saferepr import saferepr

    from tasks.dispatch import Dispatched
    from tasks.park import Slot
    from tasks.recovery import _row_message
    from tasks.row_tasks import celery_publisher, message_args, task_id

    titles = ["Plain", "Quotes ' and \" and \\\\", "Ünïcode — 日本語\n\tx", "x" * 120]
    rows = [Dispatched("create_course", "imp-1", f"courses:{n}", title, n, Slot(1.5 + n, "t" * 16), n - 2)
            for n, title in enumerate(titles, start=2)]
    rows.append(rows[0]._replace(row_id="r" * 1000))  # a repr Celery cuts
    sent: list = []
    original = redis.connection.AbstractConnection.send_packed_command
    with celery_publisher(redis_url)() as publish:
        publish(rows[:1])  # the queue declared, the exchange's bindings read

        def counting(self, command, check_health=True):
            sent.append(command)
            return original(self, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
        publish(rows[1:])
        monkeypatch.undo()
    assert len(sent) == 1
    client = RowStore.from_url(redis_url).r
    messages = [json.loads(raw) for raw in reversed(client.lrange("tagmango", 0, -1))]
    assert len(messages) == 5
    # The very message Celery's send_task makes of the same row (as the dispatcher sent them before).
    from tasks.celery_app import app

    client.delete("tagmango")
    row = rows[1]
    args, kwargs = message_args(row)
    with app.connection_for_write(redis_url) as conn, conn.Producer() as producer:
        app.send_task("tagmango.create_course", args=args, kwargs=kwargs, task_id=task_id(row.job_id, row.row_id),
                      retries=row.attempts, producer=producer, ignore_result=True, add_to_parent=False)
    [theirs] = [json.loads(raw) for raw in client.lrange("tagmango", 0, -1)]
    ours = messages[1]
    assert ours["headers"] == theirs["headers"] and ours["body"] == theirs["body"]
    assert ours["content-type"] == theirs["content-type"] and ours["content-encoding"] == theirs["content-encoding"]
    skip = {"delivery_tag"}  # kombu's random tag of each message
    assert {k: v for k, v in ours["properties"].items() if k not in skip} == {
        k: v for k, v in theirs["properties"].items() if k not in skip}
    for row, message in zip(rows, messages, strict=True):
        headers = message["headers"]
        args, kwargs = message_args(row)
        assert headers["task"] == "tagmango.create_course" and headers["id"] == task_id(row.job_id, row.row_id)
        assert headers["retries"] == row.attempts
        assert headers["argsrepr"] == saferepr(args, 1024) and headers["kwargsrepr"] == saferepr(kwargs, 1024)
        assert _row_message(message, {"tagmango.create_course"}) == (row.job_id, row.row_id, row.gen)
        assert "token" not in json.dumps(message).lower()


def test_rows_whose_publish_failed_are_parked_again(dispatcher):
    import redis

    store, d = dispatcher
    store.create_job(job("job-a", A), [])
    park(store, job("job-a", A), [("create_course", f"c:{i}", f"A{i}") for i in range(3)])
    handed: list = []

    def failing(rows: list) -> None:
        handed.extend(rows)
        raise redis.ConnectionError("Redis went away mid-publish")

    d._targets_read = 0
    with pytest.raises(redis.ConnectionError):
        d.tick(failing)
    assert handed and store.r.zcard(park_key(target_id(*A))) == 3  # every row taken out is back in the park
