"""After a job's last create: does TagMango now hold a course of this job twice?

Two imports of the same file that do not share Redis (two machines, two folders each with its embedded Redis)
both find nothing while matching and both create every course: the ledger that prevents this lives in Redis
(see the README: machines importing for the same creator must share one ``TAGMANGO_REDIS_URL``). This check
cannot prevent it, but it makes it loud: once the job is final, Get Courses is read once per set of mangoes
and every course this job created whose title (trimmed) now exists more than once under those mangoes,
where the file has it once, is reported ``DUPLICATE_IN_TAGMANGO`` with both ids: in the results file,
``status``, the dashboard, and the exit code (1).

The findings are kept on the job (``duplicates``; ``duplicates_checked`` once done), so the check runs once.
"""

from __future__ import annotations

from collections import Counter

from tasks import operations
from tasks.adopt import by_title, scan_courses
from tasks.gateway import Door
from tasks.rows import RowState
from tasks.rowstore import RowStore

CODE = "DUPLICATE_IN_TAGMANGO"


def _key(body: dict) -> tuple[tuple[str, ...], str]:
    return tuple(sorted(body.get("mangoes") or [])), str(body.get("title") or "").strip()


def find(store: RowStore, job_id: str, door: Door) -> list[dict]:
    """The job's created courses that TagMango now holds more than once (reads through ``door``)."""
    listed = [r for r in store.rows(job_id) if operations.get(r.op).listed]
    in_file = Counter(_key(r.body) for r in listed if r.body.get("title"))
    created = [r for r in listed if r.state is RowState.SUCCEEDED and (r.outcome or "").startswith("created")
               and (r.result or {}).get("course_id") and in_file[_key(r.body)] == 1]
    found: list[dict] = []
    listings: dict[tuple[str, ...], dict[str, list[dict]]] = {}
    for row in created:
        mangoes, title = _key(row.body)
        if mangoes not in listings:
            listings[mangoes] = by_title(scan_courses(door.read, list(mangoes)))
        ids = [c["_id"] for c in listings[mangoes].get(title, [])]
        ours = row.result["course_id"]
        if len(ids) > 1:
            others = [i for i in ids if i != ours]
            found.append({"row": row.row_id, "sheet": row.sheet, "line": row.row, "title": title, "course_id": ours,
                          "others": others, "message": message(title, ours, others)})
    return found


def message(title: str, ours: str, others: list[str]) -> str:
    return (f"TagMango now has {len(others) + 1} courses titled {title!r} under these mangoes (this row made {ours}; "
            f"also {', '.join(others)}): another import of the same file ran at the same time without sharing "
            "Redis? Keep one, delete the other in TagMango")


def check(store: RowStore, job_id: str, door: Door) -> list[dict]:
    """Run ``find`` once per job (when final) and keep the findings on the job; returns them."""
    job = store.job(job_id) or {}
    if job.get("duplicates_checked"):
        return list(job.get("duplicates") or [])
    found = find(store, job_id, door)
    store.set_job(job_id, duplicates=found, duplicates_checked=True)
    return found
