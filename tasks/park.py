"""The park: rows wait for their turn in Redis, per target (API URL + host), not in the workers.

Two doors lead in. New rows come through ``tasks.producer.publish`` and score their park time, so they leave in
input order; rows put back (``park_later``: a worker's retry after its backoff or a rate-limit wait, a row the
dispatcher could not publish) score ``not-before - LATER_OFFSET``, below every new row once due: a row already
under way goes first. ``tasks.dispatch`` takes rows out when their rate-limit slot comes. Keys (``{t}`` = target id)::

    tm:park:{t}          zset    "op \\x1f job \\x1f row \\x1f title" -> score (a row is parked at most once)
    tm:park:{t}:credit   string  slots handed back by dispatched rows that ended without sending (``give_back``)
    tm:park:targets      hash    target -> {"api_url", "host"}, for every target with parked rows
    tm:park:wake         list    one token, pushed when rows are parked: wakes the dispatcher's BLPOP
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from tasks.job import Job
from tasks.rows import Row
from tasks.rowscripts import LaterWrite
from tasks.rowstore import RowStore

TARGETS = "tm:park:targets"
WAKE = "tm:park:wake"
SEP = "\x1f"
#: Rows put back score ``not-before (us) - LATER_OFFSET``: below every new row, due when
#: ``score <= now - LATER_OFFSET``. New rows score their park time (us), always positive.
LATER_OFFSET = 4_000_000_000_000_000
#: Flower shows this much of a row's title (the task's third argument).
TITLE_IN_MESSAGE = 120
#: ZADD this many rows per command; ``producer.publish`` parks a job's rows this many per transaction.
CHUNK = 5000

Entry = tuple[str, str, str]  # (op, row id, title)


class Slot(NamedTuple):
    """The rate-limit slot the dispatcher handed a row out for: when it may send, and the target whose pace it
    took (a row that ends without sending gives the slot back there). Sent as a list in the task message."""

    at: float
    target: str


def park_key(target: str) -> str:
    return f"tm:park:{target}"


def credit_key(target: str) -> str:
    return f"tm:park:{target}:credit"


def member(op: str, job_id: str, row_id: str, title: str) -> str:
    return SEP.join((op, job_id, row_id, title[:TITLE_IN_MESSAGE].replace(SEP, " ")))


def parse(entry: str) -> tuple[str, str, str, str]:
    """(op, job id, row id, title) of a parked entry."""
    op, job_id, row_id, title = entry.split(SEP, 3)
    return op, job_id, row_id, title


def later_score(delay: float, now_us: int | None = None) -> int:
    """The score of a row put back, due after ``delay`` seconds (see ``LATER_OFFSET``)."""
    now_us = int(time.time() * 1e6) if now_us is None else now_us
    return now_us + int(max(delay, 0.0) * 1e6) - LATER_OFFSET


def target_info(job: Job) -> str:
    """What ``TARGETS`` holds for the job's target."""
    return json.dumps({"api_url": job.api_url.rstrip("/"), "host": job.host.lower()})


def later_write(job: Job, entry: Entry, delay: float) -> LaterWrite:
    """What ``park_later`` writes for one row, for a Lua script that parks the row together with the rest of its
    outcome in one round trip (``RowStore.later``): the same second door, the same keys and score."""
    op, row_id, title = entry
    return LaterWrite(park_key(job.target), member(op, job.id, row_id, title), later_score(delay), job.target,
                      target_info(job), TARGETS, WAKE)


def park(store: RowStore, job: Job, rows: Iterable[Entry], delay: float | None = None, *,
         start_us: int | None = None) -> int:
    """Park rows ``(op, row id, title)`` of a job for its target, in one transaction: new rows (``delay`` None) in
    order (scores from ``start_us``, default now: a caller parking a job's rows in several calls passes where each
    call starts), or rows put back, due after ``delay`` seconds. Called by the two doors only: ``producer.publish``
    and ``park_later`` (whose write a row run's ``later`` makes in its own script: ``later_write``)."""
    now_us = int(time.time() * 1e6)
    if delay is None:
        first = now_us if start_us is None else start_us
        scores = {member(op, job.id, row_id, title): first + i for i, (op, row_id, title) in enumerate(rows)}
    else:
        due = later_score(delay, now_us)
        scores = {member(op, job.id, row_id, title): due for op, row_id, title in rows}
    if not scores:
        return 0
    pipe = store.r.pipeline(transaction=True)
    items = list(scores.items())
    for start in range(0, len(items), CHUNK):
        pipe.zadd(park_key(job.target), dict(items[start:start + CHUNK]))
    pipe.hset(TARGETS, job.target, target_info(job))
    pipe.rpush(WAKE, 1)
    pipe.ltrim(WAKE, 0, 0)
    pipe.execute()
    return len(scores)


def park_later(store: RowStore, job_id: str, row: Row | Entry, delay: float) -> int:
    """The second door: put a row that was under way back in the park, due after ``delay`` seconds and from then
    on ahead of new rows. Nothing is parked for a job that is gone (expired)."""
    job = store.job(job_id)
    if job is None:
        return 0
    entry = (row.op, row.row_id, row.title) if isinstance(row, Row) else row
    return park(store, job, [entry], delay=delay)


def give_back(store: RowStore, target: str) -> None:
    """A dispatched row ended without sending: the dispatcher may hand its slot to the next row at once."""
    pipe = store.r.pipeline(transaction=False)
    pipe.incr(credit_key(target))
    pipe.expire(credit_key(target), 60)
    pipe.execute()


def parked_entries(store: RowStore, target: str, batch: int = 5000) -> Iterator[tuple[str, str, str, str]]:
    """Every row parked for a target, as (op, job id, row id, title), in no particular order."""
    for entry, _score in store.r.zscan_iter(park_key(target), count=batch):
        yield parse(entry)


def parked_count(store: RowStore, target: str) -> int:
    return int(store.r.zcard(park_key(target)))
