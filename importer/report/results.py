"""The per-row results file: the input rows as they came, with what happened to each, in input order."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from importer.matching.duplicates import CODE as DUPLICATE_CODE
from importer.report.tables import write_sheets, write_table
from tasks import operations
from tasks.job import Job
from tasks.rows import Row, RowState
from tasks.rowstore import RowStore, iso

#: status, what was done and the snapshot of what it overwrote or deleted (``before``: JSON of the old values,
#: TagMango's field names), then every operation's result columns (in registry order), then what happened.
RESULT_COLUMNS = ["status", "outcome", "before", *operations.result_columns(), "http_status", "error_code",
                  "error_message", "attempts", "finished_at", "sheet", "row"]


def result_row(row: Row, duplicate: dict | None = None, derived_before: dict | None = None) -> dict:
    """One line of the results file; ``duplicate``: what ``importer.matching.duplicates`` found for the row, if anything
    (the row succeeded, and TagMango also holds another course like it)."""
    error = row.error
    message = error.message if error else (row.reason if row.state in (RowState.INVALID, RowState.SKIPPED) else None)
    code = error.code if error else None
    if duplicate is not None:
        code, message = DUPLICATE_CODE, duplicate["message"]
    result = {**row.ids, **(row.result or {})}  # what it made, else at least where it was to go
    own = {k: v for k, v in operations.get(row.op).results(row).items() if v is not None}
    snap = {**(derived_before or {}), **(row.before or {})}
    before = json.dumps(snap, ensure_ascii=False, default=str) if snap else None
    return {**row.source, "status": row.state.value, "outcome": row.outcome, "before": before,
            **{c: result.get(c) for c in operations.result_columns()}, **own,
            "http_status": error.http_status if error else None, "error_code": code,
            "error_message": message, "attempts": row.attempts, "finished_at": iso(row.finished_at),
            "sheet": row.sheet, "row": row.row}


def default_path(job: Job | None, base: Path | None = None) -> Path:
    """``<first input>.results.xlsx|.csv`` next to the input (``base``), or in the current folder when the
    input's folder is read-only (shared or mounted data is never written into)."""
    first = job.files[0]["name"] if job and job.files else "import"
    suffix = ".csv" if first.lower().endswith((".csv", ".tsv")) else ".xlsx"
    folder = base or Path.cwd()
    if base is not None and (not os.access(base, os.W_OK) or not base.stat().st_mode & 0o222):
        folder = Path.cwd()
    return folder / f"{Path(first).stem}.results{suffix}"


def write_results(store: RowStore, job_id: str, path: Path) -> Path:
    job = store.job(job_id) or Job(job_id)
    every = list(store.rows(job_id))
    records = [r for r in every if not r.derived]  # one line per spreadsheet row
    # A tree's course and module rows have no line: their snapshot shows on the line they were made from.
    extra: dict[tuple[str, int], dict] = {}
    for rec in every:
        if rec.derived and rec.before:
            extra.setdefault((rec.sheet, rec.row), {}).update({f"{rec.kind}.{k}": v for k, v in rec.before.items()})
    # A course TagMango holds twice is said on the first line of that course (a tree's course has no line).
    by_course = {d["course_id"]: d for d in job.duplicates}
    duplicates = {}
    for rec in records:
        course_id = {**rec.ids, **(rec.result or {})}.get("course_id")
        if course_id in by_course:
            duplicates[rec.row_id] = by_course.pop(course_id)
    headers = job.headers
    by_sheet: dict[str, list[Row]] = {}
    for rec in records:
        by_sheet.setdefault(rec.sheet, []).append(rec)
    if path.suffix.lower() == ".xlsx" and len(by_sheet) > 1:
        return write_sheets(path, [(sheet, _columns(headers, sheet, recs),
                                    [result_row(r, duplicates.get(r.row_id), extra.get((r.sheet, r.row)))
                                     for r in recs])
                                   for sheet, recs in by_sheet.items()])
    columns: list[str] = []
    for sheet, recs in by_sheet.items():
        columns += [c for c in _columns(headers, sheet, recs) if c not in columns]
    return write_table(path, columns, [result_row(r, duplicates.get(r.row_id), extra.get((r.sheet, r.row)))
                                       for r in records])


def _columns(headers: dict, sheet: str, recs: list[Row]) -> list[str]:
    source = headers.get(sheet) or next((h for name, h in headers.items() if name.endswith(f":{sheet}")), None)
    if source is None:
        source = list(dict.fromkeys(k for r in recs for k in r.source))
    return [c for c in source if c not in RESULT_COLUMNS] + RESULT_COLUMNS


def dead_reasons(store: RowStore, job_id: str) -> Counter:
    return Counter(r.error.label if r.error else "ERROR" for r in store.rows(job_id, store.dead_row_ids(job_id)))
