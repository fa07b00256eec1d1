"""Sending dead rows again: all, by error code or HTTP status, by spreadsheet row, optionally corrected.

Requeued rows go through exactly the same path as a first run (ledger, lookup before re-create, limiter).
They keep their history (total attempts, earlier errors) and get a fresh attempt budget. A requeued
course also brings back the chapter rows that died because of it; a chapter whose course is still dead
stays dead. Requeueing clears a job's "credential refused" block, so fix the token first.
"""

from __future__ import annotations

from tasks.rowstore import DEAD, QUEUED, SKIPPED, SUCCEEDED, RowStore


def select_dead(store: RowStore, job_id: str, *, error_code: str | None = None, http_status: int | None = None,
                rows: set[int] | None = None, row_ids: set[str] | None = None, everything: bool = False) -> list[dict]:
    chosen = []
    for rec in store.rows(job_id, store.dead_row_ids(job_id)):
        error = rec.get("error") or {}
        if error_code and (error.get("error_code") or "").upper() != error_code.upper():
            continue
        if http_status and error.get("http_status") != http_status:
            continue
        if rows and rec["row"] not in rows:
            continue
        if row_ids is not None and rec["row_id"] not in row_ids:
            continue
        if not (everything or error_code or http_status or rows or row_ids is not None):
            continue
        chosen.append(rec)
    return chosen


def requeue_rows(store: RowStore, job_id: str, *, error_code: str | None = None, http_status: int | None = None,
                 rows: set[int] | None = None, everything: bool = False,
                 corrections: dict[str, dict] | None = None) -> dict:
    """Requeue matching dead rows; ``corrections`` maps row id -> fields of a re-validated plan item."""
    from tasks.row_tasks import DEPENDENCY_FAILED, publish

    if store.job(job_id) is None:
        raise KeyError(job_id)
    chosen = select_dead(store, job_id, error_code=error_code, http_status=http_status, rows=rows,
                         row_ids=set(corrections) if corrections is not None else None, everything=everything)
    chosen_ids = {r["row_id"] for r in chosen}
    # Chapters that died only because their course died come back with the course.
    for rec in list(chosen):
        if rec["kind"] == "course":
            for chapter in store.rows(job_id, store.waiting_on(job_id, rec["row_id"])):
                if chapter["state"] == DEAD and (chapter.get("error") or {}).get("error_code") == DEPENDENCY_FAILED \
                        and chapter["row_id"] not in chosen_ids:
                    chosen.append(chapter)
                    chosen_ids.add(chapter["row_id"])
    store.set_job(job_id, blocked=None)
    ready, waiting, still_dead = [], [], []
    for rec in chosen:
        for field, value in (corrections or {}).get(rec["row_id"], {}).items():
            rec[field] = value
        course_row = rec.get("depends_on")
        if rec["kind"] == "chapter" and course_row and rec.get("error", {}).get("error_code") == DEPENDENCY_FAILED:
            rec["chapter_id"] = None  # it will get the id when its course succeeds
        if rec["kind"] == "chapter" and course_row and not rec.get("chapter_id"):
            course = store.row(job_id, course_row)
            if course["state"] == DEAD and course_row not in chosen_ids:
                still_dead.append(rec["row_id"])
                continue
            if course["state"] not in (SUCCEEDED, SKIPPED):
                waiting.append(rec)
        previous = rec.get("error")
        if previous:
            rec.setdefault("history", []).append({**previous, "requeued": True})
        rec.update(state=QUEUED, error=None, round_attempts=0, next_attempt_at=None, finished_at=None,
                   requeues=rec.get("requeues", 0) + 1)
        if rec in waiting:
            store.save(job_id, rec, allowed_from=[DEAD])
            store.add_waiting(job_id, course_row, rec["row_id"])
            continue
        if rec["kind"] == "chapter" and course_row and not rec.get("chapter_id"):
            course = store.row(job_id, course_row)
            rec["chapter_id"] = (course.get("result") or {}).get(f"{rec['chapter_slot']}_chapter")
        rec["gen"] = store.next_generation(job_id, rec["row_id"])
        if store.save(job_id, rec, allowed_from=[DEAD]):
            ready.append(rec)
    publish(store, job_id, ready)
    store.refresh_ttl(job_id)
    return {"job": job_id, "requeued": len(ready) + len(waiting), "published": len(ready),
            "waiting_for_course": len(waiting), "still_dead": still_dead}
