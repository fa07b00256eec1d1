"""``undo JOB``: the rows that put back what a job changed, from the snapshot its rows kept (``Row.before``).

For every row of the job that succeeded:

* an update (Update Course / Module / Chapter) becomes the update back to the values matching read before it
  (only the fields it changed); its own snapshot is what it overwrites, so the undo can be undone too;
* a lesson the job made (Create Chapter, or a placeholder chapter it filled) is deleted (Delete Chapter);
* what TagMango cannot undo is listed with how to do it by hand: courses (no Delete Course) and modules (no
  documented Delete Module) the job created, and lessons it deleted (they cannot be put back in their place).

Before anything is planned, each object is read live (through the door, like matching): one that changed since
the job (its live value is no longer what the job wrote) is a conflict, and ``undo`` refuses unless forced; one
that is gone is said and left alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from importer.matching.live import LiveCatalog
from tasks import operations
from tasks.operations import CHAPTER, COURSE, CREATED, DELETED, MODULE, UPDATED
from tasks.rows import Row, RowState, snapshot
from tasks.rowstore import RowStore

BY_HAND = {COURSE: "TagMango has no Delete Course: delete it by hand in the TagMango dashboard (Courses → the "
                   "course → Delete)",
           MODULE: "TagMango documents no Delete Module: remove it by hand in the course editor of the TagMango "
                   "dashboard"}


@dataclass
class UndoPlan:
    """What undoing a job does (``rows``, a plan ``tasks.enqueue`` takes), cannot do, and finds changed."""

    job_id: str
    files: list[dict] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    unsent: list[Row] = field(default_factory=list)
    headers: dict[str, list[str]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # the plan, one line per row to send
    cannot: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reads: int = 0

    def summary(self) -> dict:
        verbs = [operations.get(r.op).verb for r in self.rows]
        return {"restore": verbs.count(UPDATED), "delete": verbs.count(DELETED), "cannot": len(self.cannot),
                "conflicts": len(self.conflicts)}


def _read(catalog: LiveCatalog, kind: str, object_id: str) -> dict | None:
    return {COURSE: catalog.course, MODULE: catalog.module, CHAPTER: catalog.chapter}[kind](object_id)


def _name(row: Row, object_id: str) -> str:
    return f"{operations.noun(row.kind)} {row.title!r} ({object_id}, {row.sheet} row {row.row})"


def plan_undo(store: RowStore, job_id: str, catalog: LiveCatalog) -> UndoPlan:
    """Read what the job's objects hold now and plan putting back what it changed (reads only)."""
    job = store.job(job_id)
    plan = UndoPlan(job_id, headers=dict(job.headers) if job else {})
    plan.files = [{"name": f"{job_id}.undo.xlsx",
                   "checksum": hashlib.sha256(f"undo {job_id} {store.r.time()}".encode()).hexdigest()}]
    rows = [r for r in store.rows(job_id) if r.state is RowState.SUCCEEDED]
    made = [r for r in rows if r.kind == COURSE and operations.get(r.op).verb == CREATED]
    made_courses, made_rows = {(r.result or {}).get("course_id") for r in made}, {r.row_id for r in made}
    for row in rows:
        op = operations.get(row.op)
        result = {**row.ids, **(row.result or {})}
        object_id = result.get(f"{row.kind}_id") or ""
        taken_over = row.place is not None and row.place.takeover
        in_made_course = row.parent in made_rows or result.get("course_id") in made_courses
        if op.verb == UPDATED and not taken_over and row.before is None and in_made_course:
            continue  # a patch of a course the job created (its first/second chapter): goes with the course
        if op.verb == UPDATED and not taken_over:
            _restore(plan, catalog, row, object_id)
        elif row.kind == CHAPTER and op.verb in (CREATED, UPDATED):  # made by the job, or a placeholder it filled
            _delete(plan, catalog, row, object_id, result)
        elif op.verb == DELETED:
            plan.cannot.append(f"{_name(row, object_id)} was deleted by the job: TagMango cannot put it back in its "
                               "place (no reorder); its values are in the job's results file (column before)")
        elif row.kind in BY_HAND and (row.kind == COURSE or not in_made_course):
            plan.cannot.append(f"{_name(row, object_id)} was created by the job: {BY_HAND[row.kind]}")
    plan.reads = catalog.reads
    return plan


def _restore(plan: UndoPlan, catalog: LiveCatalog, row: Row, object_id: str) -> None:
    """An update back to the snapshot's values, if the live object still holds what the job wrote."""
    if row.before is None:
        plan.cannot.append(f"{_name(row, object_id)}: no snapshot (the job ran before snapshots were kept)")
        return
    missing = row.before.get("_missing") or []
    if missing:
        plan.cannot.append(f"{_name(row, object_id)}: {', '.join(missing)} too long to keep in the snapshot")
    old = {k: v for k, v in row.before.items() if k != "_missing"}
    empty = sorted(f for f, v in old.items() if v is None)
    if empty:  # an update leaves out what it does not send, and TagMango documents no way to clear these
        plan.cannot.append(f"{_name(row, object_id)}: {', '.join(empty)} had no value before the job and TagMango "
                           "documents no way to clear it: clear it by hand in the TagMango dashboard")
        old = {f: v for f, v in old.items() if v is not None}
    if not old:
        return
    live = _read(catalog, row.kind, object_id)
    if live is None:
        plan.notes.append(f"{_name(row, object_id)} is gone from TagMango: nothing to put back")
        return
    update = operations.update_for(row.kind)
    changed = update.changes(row.body, live)
    if changed:
        plan.conflicts.append(f"{_name(row, object_id)} changed since the job: "
                              + "; ".join(f"{f} is {_short(v[0])}, the job wrote {_short(v[1])}"
                                          for f, v in changed.items()))
    back = {f: [(row.diff or {}).get(f, [None, None])[1], value] for f, value in old.items()}
    body = update.changed_body({f: v for f, v in old.items() if "." not in f}, back)
    diff = update.changes(body, live)
    if not diff:
        plan.notes.append(f"{_name(row, object_id)} already holds its old values")
        return
    ids = {k: v for k, v in row.ids.items() if k.endswith("_id")} | {f"{row.kind}_id": object_id}
    plan.rows.append(_undo_row(plan, row, update.name, ids, update.changed_body(body, diff), diff,
                               snapshot({f: v[0] for f, v in diff.items()}), "update"))
    plan.lines.append(f"  ~ put back {_name(row, object_id)}: "
                      + "; ".join(f"{f} {_short(v[0])} → {_short(v[1])}" for f, v in diff.items()))


def _delete(plan: UndoPlan, catalog: LiveCatalog, row: Row, chapter_id: str, result: dict) -> None:
    live = catalog.chapter(chapter_id) if chapter_id else None
    if live is None:
        plan.notes.append(f"{_name(row, chapter_id)} is already gone from TagMango")
        return
    update = operations.update_for(CHAPTER)
    changed = update.changes(row.body, live)
    if changed:
        plan.conflicts.append(f"{_name(row, chapter_id)}, created by the job, changed since: "
                              + "; ".join(f"{f} is {_short(v[0])}, the job wrote {_short(v[1])}"
                                          for f, v in changed.items()))
    ids = {"chapter_id": chapter_id, **{k: result[k] for k in ("course_id", "module_id") if result.get(k)}}
    before = snapshot({f: live.get(f) for f in update.compared_fields if f in live})
    plan.rows.append(_undo_row(plan, row, operations.delete_for(CHAPTER).name, ids, {}, None, before, "delete"))
    plan.lines.append(f"  - delete {_name(row, chapter_id)} (the job created it)")


def _undo_row(plan: UndoPlan, row: Row, op: str, ids: dict, body: dict, diff: dict | None, before: dict,
              outcome: str) -> Row:
    return Row(row_id=row.row_id, op=op, kind=row.kind, file=plan.files[0]["name"], sheet=row.sheet, row=row.row,
               key=f"undo:{plan.job_id}:{row.row_id}", title=row.title, body=body, ids=ids, diff=diff,
               before=before, released=True, outcome=outcome, source=dict(row.source),
               reason=f"undo of {plan.job_id}")


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
