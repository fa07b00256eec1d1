"""Sending dead rows again: all, by error code or HTTP status, by spreadsheet row, optionally corrected.

Requeued rows go through exactly the same path as a first run (ledger, lookup before re-create, limiter).
They keep their history (total attempts, earlier errors) and get a fresh attempt budget. A requeued row
also brings back the rows that died only because it died (DEPENDENCY_FAILED, all the way down); a row whose
parent is still dead stays dead. Requeueing clears a job's "credential refused" block, so fix the token first.
"""

from __future__ import annotations

from tasks import operations
from tasks.operations import MissingParentId
from tasks.producer import publish, release_dependents
from tasks.rows import Row, RowState
from tasks.rowstore import RowStore


def select_dead(store: RowStore, job_id: str, *, error_code: str | None = None, http_status: int | None = None,
                rows: set[int] | None = None, row_ids: set[str] | None = None, everything: bool = False) -> list[Row]:
    if not (everything or error_code or http_status or rows or row_ids is not None):
        return []
    chosen = []
    for row in store.rows(job_id, store.dead_row_ids(job_id)):
        code = (row.error.code if row.error else None) or ""
        if error_code and code.upper() != error_code.upper():
            continue
        if http_status and (row.error.http_status if row.error else None) != http_status:
            continue
        if rows and row.row not in rows:
            continue
        if row_ids is not None and row.row_id not in row_ids:
            continue
        chosen.append(row)
    return chosen


def _with_dependents(store: RowStore, job_id: str, chosen: list[Row]) -> list[Row]:
    """The chosen rows plus every row that died only because one of them (or one of those) died."""
    out, seen, stack = list(chosen), {r.row_id for r in chosen}, list(chosen)
    while stack:
        row = stack.pop()
        for child in store.rows(job_id, store.waiting_on(job_id, row.row_id)):
            if child.died_of_parent and child.row_id not in seen:
                out.append(child)
                seen.add(child.row_id)
                stack.append(child)
    return out


def _staying_dead(store: RowStore, job_id: str, chosen: list[Row], by_id: dict[str, Row]) -> set[str]:
    """Chosen rows that wait for a parent which stays dead: one not chosen, or chosen but itself staying dead
    (all the way down a chain), so that nothing is queued to wait for a row that will not run."""
    stays: set[str] = set()
    changed = True
    while changed:
        changed = False
        for row in chosen:
            if row.row_id in stays or not row.parent or row.released or row.state is RowState.SKIPPED:
                continue
            parent = by_id.get(row.parent) or store.row(job_id, row.parent)
            if parent is None or (parent.state is RowState.DEAD and
                                  (parent.row_id not in by_id or parent.row_id in stays)):
                stays.add(row.row_id)
                changed = True
    return stays


def requeue_rows(store: RowStore, job_id: str, *, error_code: str | None = None, http_status: int | None = None,
                 rows: set[int] | None = None, everything: bool = False,
                 corrections: dict[str, dict] | None = None) -> dict:
    """Requeue matching dead rows; ``corrections`` maps row id -> Row fields of a re-validated row."""
    if store.job(job_id) is None:
        raise KeyError(job_id)
    chosen = select_dead(store, job_id, error_code=error_code, http_status=http_status, rows=rows,
                         row_ids=set(corrections) if corrections is not None else None, everything=everything)
    chosen = _with_dependents(store, job_id, chosen)
    by_id = {r.row_id: r for r in chosen}
    store.set_job(job_id, blocked=None)
    ready, waiting, still_dead = [], [], []
    settled = []
    for row in chosen:
        fix = (corrections or {}).get(row.row_id, {})
        for field_name, value in fix.items():
            setattr(row, field_name, value)
        if row.state is not RowState.SKIPPED and (
                row.died_of_parent or (("ids" in fix or "parent" in fix) and not fix.get("released"))):
            row.released = False  # it takes its ids from its parent again
            if row.died_of_parent and not row.placed_by_parent:
                for field_name in operations.get(row.op).needs:
                    row.ids.pop(field_name, None)
    stays = _staying_dead(store, job_id, chosen, by_id)
    for row in chosen:
        if row.state is RowState.SKIPPED:  # the corrected row's work is already in TagMango
            if row.error is not None:
                row.history = [*row.history, {**row.error.as_dict(), "requeued": True}]
            row.error = None
            if store.save(job_id, row, expect=[RowState.DEAD]):
                settled.append(row)
            continue
        parent = None
        if row.parent and not row.released:
            if row.row_id in stays:
                still_dead.append(row.row_id)
                continue
            parent = by_id.get(row.parent) or store.row(job_id, row.parent)
            if parent.done:
                try:
                    operations.take_from_parent(row, parent.result or {})
                    row.released = True
                except MissingParentId:
                    still_dead.append(row.row_id)
                    continue
        if row.error is not None:
            row.history = [*row.history, {**row.error.as_dict(), "requeued": True}]
        row.state, row.error, row.round_attempts, row.next_attempt_at, row.finished_at = (
            RowState.QUEUED, None, 0, None, None)
        row.requeues += 1
        if row.waiting_for_parent:
            if store.save(job_id, row, expect=[RowState.DEAD]):
                store.add_waiting(job_id, row.parent, row.row_id)
                waiting.append(row)
            continue
        row.gen = store.next_generation(job_id, row.row_id)
        if store.save(job_id, row, expect=[RowState.DEAD]):
            ready.append(row)
    publish(store, job_id, ready)
    for row in settled:
        release_dependents(store, job_id, row)
    # A parent that finished while we were putting its children back has already looked for them: look again.
    for parent_id in {r.parent for r in waiting if r.parent not in by_id}:
        parent = store.row(job_id, parent_id)
        if parent is not None and parent.is_final:
            release_dependents(store, job_id, parent)
    store.refresh_ttl(job_id)
    return {"job": job_id, "requeued": len(ready) + len(waiting), "published": len(ready),
            "waiting_for_parent": len(waiting), "still_dead": still_dead, "settled": len(settled)}
