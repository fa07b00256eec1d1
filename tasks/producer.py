"""The producer side: queueing rows, releasing rows that wait for a parent, dead-lettering.

Used by the command line (enqueue, requeue, resume) and by workers (a finished row releases its dependents).
``publish`` is the park's first door (tasks.park): the dispatcher hands parked rows to the Celery queue by task
*name*, so nothing here imports the task module.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tasks import operations
from tasks.operations import MissingParentId
from tasks.park import CHUNK, Entry, park
from tasks.rows import ErrorCode, Row, RowFailure, RowState
from tasks.rowstore import RowStore, now

log = logging.getLogger("tagmango.rows")
T = TypeVar("T")


def dependency_message(dead_parent: Row) -> str:
    """Why a row waiting for ``dead_parent`` is dead: the row that really failed, and its reason (a chain of
    waiting rows all name the same root)."""
    error = dead_parent.error
    if dead_parent.died_of_parent and error is not None:
        return error.message
    cause = f"{error.label}: {error.message}" if error else "no reason recorded"
    cause = cause if len(cause) <= 160 else cause[:159] + "…"
    return f"row {dead_parent.row_id} is dead ({cause}); fix and requeue it to send this row"


def publish(store: RowStore, job_id: str, rows: Iterable[Row], start_us: int | None = None) -> int:
    """Queue rows to be sent: each is parked for its job's target (API URL + host) in input order until the
    dispatcher hands it to a worker at its rate-limit slot (``tasks.dispatch``), as one Celery message carrying
    job id, row id, title and the row's generation at that moment: never the body, never a token. One round trip
    for the job, one for the rows, on the store's Redis (the command line and tests queue to the Redis they were
    given, whatever this process's environment says). Many rows are parked ``CHUNK`` at a time, in order (scores
    from ``start_us``, default now: a caller publishing a job's rows in several calls passes where each starts).
    """
    return publish_entries(store, job_id, ((row.op, row.row_id, row.title) for row in rows), start_us)


def publish_entries(store: RowStore, job_id: str, entries: Iterable[Entry], start_us: int | None = None) -> int:
    """``publish`` of rows given as ``(op, row id, title)``."""
    entries = iter(entries)
    first = next(entries, None)
    if first is None:
        return 0
    job = store.job(job_id)
    if job is None:
        log.warning("job %s not found (expired?); row(s) not queued", job_id)
        return 0
    start_us, parked = int(time.time() * 1e6) if start_us is None else start_us, 0
    for chunk in chunked(itertools.chain((first,), entries), CHUNK):
        parked += park(store, job, chunk, start_us=start_us + parked)
    return parked


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def mark_dead(store: RowStore, job_id: str, row: Row, failure: RowFailure) -> None:
    """Dead-letter the row with its reason; rows waiting for it die with DEPENDENCY_FAILED (all the way down)."""
    row.state, row.error, row.next_attempt_at, row.finished_at = RowState.DEAD, failure, None, now()
    store.save(job_id, row)
    log.warning("%s %s dead: %s", job_id, row.row_id, failure)
    release_dependents(store, job_id, row)


def release_dependents(store: RowStore, job_id: str, parent: Row) -> int:
    """Hand a finished row's ids to the rows waiting for it and publish them; a dead parent kills them.

    Idempotent: a row already released or no longer queued is left alone, so a redelivered parent message
    may call this again. Iterative, so a long chain of dependents (lessons in file order) cannot overflow
    the stack. Returns the number of rows published.
    """
    if not operations.has_dependents(parent.op):
        return 0
    pending = [parent]
    published = 0
    while pending:
        current = pending.pop()
        waiting = [r for r in store.rows(job_id, store.waiting_on(job_id, current.row_id)) if r.waiting_for_parent]
        ready = []
        for child in waiting:
            if current.done:
                try:
                    operations.take_from_parent(child, current.result or {})
                except MissingParentId as exc:
                    child.state, child.finished_at = RowState.DEAD, now()
                    child.error = RowFailure(ErrorCode.DEPENDENCY_FAILED, f"parent row {current.row_id}: {exc}")
                    if store.save(job_id, child, expect=[RowState.QUEUED]):
                        pending.append(child)
                    continue
                child.released = True
                child.gen = store.next_generation(job_id, child.row_id)
                if store.save(job_id, child, expect=[RowState.QUEUED]):
                    ready.append(child)
            elif current.state is RowState.DEAD:
                child.state, child.finished_at, child.next_attempt_at = RowState.DEAD, now(), None
                child.error = RowFailure(ErrorCode.DEPENDENCY_FAILED, dependency_message(current))
                if store.save(job_id, child, expect=[RowState.QUEUED]):
                    pending.append(child)
        published += publish(store, job_id, ready)
    return published
