"""Rows whose task message is gone, given a fresh one.

A message can vanish (Redis loses its last second of writes in a crash, a worker dies between taking a message and
recording it as unacknowledged, a process dies between saving a row and parking it), and the row then stays active
forever. Idle is not enough to tell: rows wait parked behind the rate limiter far longer than any timeout. So a row
is stuck only when it is idle *and* its current generation is neither parked nor in the broker; see the README's
"Lost messages". Keys it reads and owns::

    tagmango, tagmango\x06\x16{3,6,9}   lists   kombu's queue (by priority): messages not yet delivered
    unacked                            hash    kombu's messages delivered to a worker and not acknowledged
    tm:sweep:lock                      string  one sweep at a time across workers (expires, never released)
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

import redis

from tasks import operations
from tasks.defaults import QUEUE
from tasks.job import Job
from tasks.park import CHUNK, parked_count, parked_entries
from tasks.producer import chunked, publish, release_dependents
from tasks.rows import ACTIVE, Row, RowState
from tasks.rowstore import RowStore, now
from tasks.settings import Settings

log = logging.getLogger("tagmango.recovery")

#: kombu's Redis transport keeps delivered-but-unacknowledged messages here (its default key names).
UNACKED_KEY = "unacked"
#: A row missing from both the park and the broker is looked for again after this long before it counts as lost
#: (it may have been on its way from one to the other).
TRANSIT_S = 1.0
#: kombu's separator for the per-priority lists of a queue (``queue``, ``queue\x06\x163``, ...).
PRIORITY_SEP = "\x06\x16"
SWEEP_LOCK = "tm:sweep:lock"


def _queue_lists() -> list[str]:
    return [QUEUE] + [f"{QUEUE}{PRIORITY_SEP}{p}" for p in (3, 6, 9)]


def broker_message_count(store: RowStore) -> int:
    pipe = store.r.pipeline(transaction=False)
    for name in _queue_lists():
        pipe.llen(name)
    pipe.hlen(UNACKED_KEY)
    return sum(pipe.execute())


def _row_message(message: dict, task_names: set[str]) -> tuple[str, str, int] | None:
    """(job id, row id, generation) of one of our row tasks' messages, else None."""
    headers = message.get("headers") or {}
    if headers.get("task") not in task_names:
        return None
    body = message.get("body") or ""
    if (message.get("properties") or {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args, kwargs, _embed = json.loads(body)
    return str(args[0]), str(args[1]), int(kwargs.get("gen", 0))


def broker_row_messages(store: RowStore, batch: int = 1000) -> Iterator[tuple[str, str, int]]:
    """Every row message waiting in the queue or held unacknowledged, as (job id, row id, generation)."""
    names = operations.task_names()
    for name in _queue_lists():
        for start in range(0, store.r.llen(name), batch):
            for raw in store.r.lrange(name, start, start + batch - 1):
                found = _row_message(json.loads(raw), names)
                if found:
                    yield found
    for _tag, raw in store.r.hscan_iter(UNACKED_KEY, count=batch):
        found = _row_message(json.loads(raw)[0], names)
        if found:
            yield found


def parked_row_messages(store: RowStore, job: Job) -> Iterator[tuple[str, str, int]]:
    """The job's parked rows, as (job id, row id, current generation): the dispatcher publishes a parked row
    with the generation it has then, so a parked row has its pending message by definition."""
    gens = store.generations(job.id)
    for _op, job_id, row_id, _title in parked_entries(store, job.target):
        if job_id == job.id:
            yield job_id, row_id, gens.get(row_id, 0)


def pending_row_messages(store: RowStore, job: Job) -> Iterator[tuple[str, str, int]]:
    """Parked rows first, then the broker's messages (the order in which a row moves between them)."""
    yield from parked_row_messages(store, job)
    yield from broker_row_messages(store)


def stuck_rows(store: RowStore, job_id: str, idle_for: float) -> list[Row]:
    """Active rows idle for ``idle_for`` seconds whose current message is neither parked nor in the broker."""
    job = store.job(job_id)
    counts = store.counts(job_id)
    if job and parked_count(store, job.target) + broker_message_count(store) >= sum(counts.get(s.value, 0)
                                                                                    for s in ACTIVE):
        # Every active row may have its message (the check below, before any row is read): a queued million-row
        # job costs the sweeper a few counts, not a million row records, every round.
        return []
    states = store.states(job_id)
    active = [row_id for row_id, state in states.items() if RowState(state) in ACTIVE]
    cutoff = now() - idle_for
    created = job.created_at if job else 0.0  # rows not touched since enqueue
    needing_message = 0
    idle = []
    for row in store.rows(job_id, active):
        if row.waiting_for_parent:
            continue  # its parent is accounted for on its own
        needing_message += 1
        if (row.updated_at or created) < cutoff and (row.next_attempt_at or 0) < cutoff:
            idle.append(row)
    if not idle or not job:
        return []
    parked = parked_count(store, job.target)
    if parked + broker_message_count(store) >= needing_message:
        return []
    missing = _without_message(store, job, idle)
    if missing:
        # A row between the park and the broker (the dispatcher popped it and is publishing it) or between the
        # queue and ``unacked`` (a worker just took it) is in neither for a few milliseconds: look once more.
        time.sleep(TRANSIT_S)
        again = {row.row_id: row for row in store.rows(job_id, [r.row_id for r in missing])}
        missing = _without_message(store, job, [again[r.row_id] for r in missing if r.row_id in again
                                                 and again[r.row_id].updated_at == r.updated_at
                                                 and again[r.row_id].is_active])
    return missing


def _without_message(store: RowStore, job: Job, rows: list[Row]) -> list[Row]:
    """The rows whose current generation has no message parked, queued or held by a worker."""
    present = {(row_id, gen) for job_, row_id, gen in pending_row_messages(store, job) if job_ == job.id}
    gens = store.generations(job.id)
    return [row for row in rows if (row.row_id, gens.get(row.row_id, 0)) not in present]


def republish_stuck(store: RowStore, job_id: str, idle_for: float) -> int:
    # A new generation: a message of the old one that turns up after all is dropped. (A row that finished since it
    # was found stuck is not sent again.)
    rows = store.renew(job_id, stuck_rows(store, job_id, idle_for))
    if rows:
        log.warning("%s: %d row(s) had no task message and were not parked; queued again: %s", job_id, len(rows),
                    ", ".join(r.row_id for r in rows[:20]))
        store.tally(job_id, "recovered", len(rows))
        publish(store, job_id, rows)
    return len(rows)


def resume(store: RowStore, job_id: str) -> int:
    """Give every unfinished row of a job a fresh message (for a job whose workers are all gone).

    Only for a job no live worker is working on (the embedded setup after Ctrl-C or a crash): a new
    generation makes any old message of the row stale, so nothing runs twice.
    """
    start_us, resumed, parents = int(time.time() * 1e6), 0, []
    for page in chunked(store.rows(job_id), CHUNK):  # a page at a time: a million-row job is never held whole
        ready = [row for row in page if row.is_active and not row.waiting_for_parent]
        for row in ready:
            row.state = RowState.QUEUED
        resumed += publish(store, job_id, store.renew(job_id, ready), start_us + resumed)
        parents += [row.row_id for row in page if row.is_final and operations.has_dependents(row.op)]
    # Parents that finished while their dependents were not yet released (after every page: a dependent released
    # here and then met on a later page would be sent twice).
    for page in chunked(parents, CHUNK):
        for row in store.rows(job_id, page):
            release_dependents(store, job_id, row)
    store.set_job(job_id, published=True)
    return resumed


def sweep_jobs(store: RowStore, idle_for: float, recent: int = 200) -> int:
    """Republish lost messages of every recent job that is not final."""
    total = 0
    for job_id in store.jobs(recent):
        if not store.is_final(job_id):
            total += republish_stuck(store, job_id, idle_for)
    return total


class Sweeper:
    """A daemon thread sweeping every third of the idle limit; the lock makes it one worker per round."""

    def __init__(self, store: RowStore, settings: Settings) -> None:
        self.store, self.idle = store, settings.recovery_idle
        self.every = max(5.0, settings.recovery_idle / 3)
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()

    def sweep_if_mine(self) -> None:
        """One sweep per period across workers: the lock is never released, it expires."""
        lock = self.store.r.lock(SWEEP_LOCK, timeout=max(1.0, self.every * 0.9), blocking=False)
        if lock.acquire(token=self.me):
            sweep_jobs(self.store, self.idle)

    def run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sweep_if_mine()
            except redis.ConnectionError as exc:  # Redis restarting: try again next round
                log.info("recovery sweep skipped, Redis unavailable: %s", exc)
            except Exception:
                log.exception("recovery sweep failed")

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="tagmango-recovery", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
