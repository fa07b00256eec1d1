"""The per-row results file: the input rows as they came, with what happened to each, in input order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from importer.tables import write_sheets, write_table
from tasks.rowstore import RowStore, iso

RESULT_COLUMNS = ["status", "course_id", "first_chapter", "second_chapter", "chapter_id", "http_status",
                  "error_code", "error_message", "attempts", "finished_at", "sheet", "row"]


def result_row(rec: dict) -> dict:
    result = rec.get("result") or {}
    error = rec.get("error") or {}
    message = error.get("message") or (rec.get("reason") if rec["state"] in ("invalid", "skipped") else None)
    return {**(rec.get("source") or {}), "status": rec["state"], "course_id": result.get("course_id"),
            "first_chapter": result.get("first_chapter"), "second_chapter": result.get("second_chapter"),
            "chapter_id": result.get("chapter_id") or (rec.get("chapter_id") if rec["kind"] == "chapter" else None),
            "http_status": error.get("http_status"), "error_code": error.get("error_code"),
            "error_message": message, "attempts": rec.get("attempts", 0), "finished_at": iso(rec.get("finished_at")),
            "sheet": rec["sheet"], "row": rec["row"]}


def default_path(job: dict, base: Path | None = None) -> Path:
    first = job["files"][0]["name"] if job.get("files") else "import"
    suffix = ".csv" if first.lower().endswith((".csv", ".tsv")) else ".xlsx"
    return (base or Path.cwd()) / f"{Path(first).stem}.results{suffix}"


def write_results(store: RowStore, job_id: str, path: Path) -> Path:
    job = store.job(job_id) or {}
    records = list(store.rows(job_id))
    headers: dict[str, list[str]] = job.get("headers") or {}
    by_sheet: dict[str, list[dict]] = {}
    for rec in records:
        by_sheet.setdefault(rec["sheet"], []).append(rec)
    if path.suffix.lower() == ".xlsx" and len(by_sheet) > 1:
        return write_sheets(path, [(sheet, _columns(headers, sheet, recs), [result_row(r) for r in recs])
                                   for sheet, recs in by_sheet.items()])
    columns: list[str] = []
    for sheet, recs in by_sheet.items():
        columns += [c for c in _columns(headers, sheet, recs) if c not in columns]
    return write_table(path, columns, [result_row(r) for r in records])


def _columns(headers: dict, sheet: str, recs: list[dict]) -> list[str]:
    source = headers.get(sheet) or next((h for name, h in headers.items() if name.endswith(f":{sheet}")), None)
    if source is None:
        source = list(dict.fromkeys(k for r in recs for k in (r.get("source") or {})))
    return [c for c in source if c not in RESULT_COLUMNS] + RESULT_COLUMNS


def dead_reasons(store: RowStore, job_id: str) -> Counter:
    return Counter((r.get("error") or {}).get("error_code") or str((r.get("error") or {}).get("http_status"))
                   for r in store.rows(job_id, store.dead_row_ids(job_id)))
