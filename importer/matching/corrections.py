"""``requeue --from``: which dead row of a job each row of a corrected file replaces.

A corrected file is validated (and, with ``--mode``, matched against TagMango) like any input; each of its rows is
then mapped to a dead row of the job, by its key, else by sheet + row. A correction replaces what the spreadsheet
decides (body, title, key, parameters, ids given in the sheet, and which row of the job is the parent); the row's
history stays. A row whose work TagMango already has is settled, one whose object exists becomes an update of what
changed.
"""

from __future__ import annotations

from importer.ingest.plan import Plan
from importer.ingest.problems import Problem
from tasks.rows import RowState
from tasks.rowstore import RowStore


def corrections_from(store: RowStore, job_id: str, plan: Plan) -> tuple[dict[str, dict], list[Problem]]:
    """``{dead row id: what replaces it}``, and the corrected file's errors on rows that are dead in the job."""
    dead = list(store.rows(job_id, store.dead_row_ids(job_id)))
    by_key = {(r.kind, r.key): r for r in dead}
    by_place = {(r.kind, r.sheet.lower(), r.row): r for r in dead}
    dead_places = {(r.sheet.lower(), r.row) for r in dead}
    bad = {(u.sheet.lower(), u.row) for u in plan.unsent if u.state is RowState.INVALID}
    problems = [p for p in plan.errors if (str(p.sheet).lower(), p.row) in dead_places]
    planned = {r.row_id: r for r in [*plan.rows, *plan.unsent]}
    job_rows: dict | None = None
    corrections = {}
    for row in [*plan.rows, *(u for u in plan.unsent if u.state is RowState.SKIPPED and u.outcome)]:
        target = by_key.get((row.kind, row.key)) or by_place.get((row.kind, row.sheet.lower(), row.row))
        if target is None or (row.sheet.lower(), row.row) in bad:
            continue
        fix = {"body": row.body, "title": row.title, "key": row.key, "source": row.source, "params": row.params,
               "place": row.place, "diff": row.diff, "before": row.before, "ids": dict(row.ids), "parent": None,
               "op": row.op}
        if row.is_final or row.released:  # settled or matched against TagMango: nothing to take from a parent
            fix.update(state=row.state, result=row.result, outcome=row.outcome, reason=row.reason,
                       released=row.released)
        parent = planned.get(row.parent) if row.parent else None
        if parent is not None:  # the parent row of the corrected file -> the same row of the job: key, else place
            if job_rows is None:
                job_rows = {}
                for r in store.rows(job_id):
                    job_rows[(r.kind, r.key)] = job_rows[(r.kind, r.sheet.lower(), r.row)] = r.row_id
            fix["parent"] = job_rows.get((parent.kind, parent.key)) or job_rows.get(
                (parent.kind, parent.sheet.lower(), parent.row))
        corrections[target.row_id] = fix
    return corrections, problems
