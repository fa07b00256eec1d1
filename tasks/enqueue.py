"""Turning a validated plan into a job: every row recorded first, then one task message per ready row.

The job and all its row records are written in one Redis transaction before anything is published,
so a crash while publishing never loses a row: unpublished rows stay ``queued`` and the job's
``published`` flag stays false until every message is out; ``resume`` publishes them (again; a
duplicate message is dropped by the row's generation check or serialised by its lease).
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import asdict

from importer.plan import Plan
from tasks.rowstore import INVALID, QUEUED, SKIPPED, RowStore, new_job_id, now


def fingerprint(plan: Plan, api_url: str, host: str) -> str:
    """Same files (by content) to the same target = the same job, so running again resumes it."""
    text = "|".join(sorted(f["checksum"] for f in plan.files)) + f"|{api_url.rstrip('/')}|{host.lower()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _order_key(plan: Plan):  # noqa: ANN202
    files = {f["name"]: i for i, f in enumerate(plan.files)}
    return lambda r: (files.get(r["file"], 0), r["sheet"], r["row"])


def records_for(plan: Plan) -> list[dict]:
    records = []
    for item in plan.items:
        rec = asdict(item)
        rec.update(state=QUEUED, attempts=0, round_attempts=0, gen=0, history=[], result=None, error=None)
        records.append(rec)
    for unsent in plan.unsent:
        rec = asdict(unsent)
        rec.update(state=INVALID if unsent.state == "invalid" else SKIPPED, attempts=0, gen=0, history=[],
                   result=None, error=None, body=None, finished_at=now())
        records.append(rec)
    records.sort(key=_order_key(plan))
    return records


def create_job(store: RowStore, plan: Plan, api_url: str, host: str, *, label: str | None = None) -> str:
    """Record the job and its rows (nothing is published yet)."""
    job_id = new_job_id()
    records = records_for(plan)
    job = {"id": job_id, "created_at": now(), "files": plan.files, "api_url": api_url.rstrip("/"),
           "host": host.lower(), "total": len(records), "label": label or ", ".join(f["name"] for f in plan.files),
           "fingerprint": fingerprint(plan, api_url, host), "headers": plan.headers, "published": False,
           "blocked": None, "enqueued_from": socket.gethostname()}
    store.create_job(job, records)
    return job_id


def publish_ready(store: RowStore, job_id: str) -> int:
    """Publish every queued row that is not waiting for a course; then mark the job published."""
    from tasks.row_tasks import publish

    ready = [r for r in store.rows(job_id) if r["state"] == QUEUED and not (r.get("depends_on") and
                                                                           not r.get("chapter_id"))]
    gens = store.r.hgetall(store.k(job_id, "gen"))  # one round trip, not one per row
    for rec in ready:
        rec["gen"] = int(gens.get(rec["row_id"], 0))
    sent = publish(store, job_id, ready)
    store.set_job(job_id, published=True)
    return sent


def enqueue(store: RowStore, plan: Plan, api_url: str, host: str, *, label: str | None = None) -> str:
    job_id = create_job(store, plan, api_url, host, label=label)
    publish_ready(store, job_id)
    return job_id
