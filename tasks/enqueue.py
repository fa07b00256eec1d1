"""Turning a validated plan into a job: every row recorded first, then one task message per ready row.

All row records are written (a few thousand per round trip, as they come: ``run`` matches them a chunk at a time
while they are written) before the job record, which is written last in one transaction: a job exists only with
all its rows (rows that fail to come are deleted; a process killed before leaves row keys nobody reads, which
expire). Nothing is published before that, so a crash while publishing never loses a row: unpublished rows stay
``queued`` and the job's ``published`` flag stays false until every message is out; ``resume`` publishes them
(again; a duplicate message is dropped by the row's generation check or serialised by its lease).

A plan is anything with ``files`` ([{"name", "checksum"}]), ``rows`` (rows to send), ``unsent`` (invalid
or skipped rows, already final) and ``headers`` (the header order per sheet): ``importer.ingest.plan.Plan``.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterable
from typing import Protocol

from tasks import operations
from tasks.job import Job
from tasks.producer import publish_entries, release_dependents
from tasks.rows import Row, RowState
from tasks.rowstore import RowStore, new_job_id, now


class PlanLike(Protocol):
    files: list[dict]
    rows: list[Row]
    unsent: list[Row]
    headers: dict[str, list[str]]


def fingerprint(plan: PlanLike, api_url: str, host: str, mode: str = "create") -> str:
    """Same files (by content) to the same target in the same mode = the same job, so running again resumes it."""
    text = "|".join(sorted(f["checksum"] for f in plan.files)) + f"|{api_url.rstrip('/')}|{host.lower()}"
    text += "" if mode == "create" else f"|{mode}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def rows_for(plan: PlanLike) -> list[Row]:
    """The job's rows in input order (file, sheet, row): unsent ones already final."""
    files = {f["name"]: i for i, f in enumerate(plan.files)}
    rows = list(plan.rows)
    for row in plan.unsent:
        row.finished_at = row.finished_at or now()
        rows.append(row)
    return sorted(rows, key=lambda r: (files.get(r.file, 0), r.sheet, r.row))


def create_job(store: RowStore, plan: PlanLike, api_url: str, host: str, *, label: str | None = None,
               mode: str = "create", rows: Iterable[Row] | None = None) -> str:
    """Record the job and its rows (nothing is published yet); ``rows``: the job's rows in input order if not
    ``rows_for(plan)``, written as they come (a generator: ``importer.matching.matched_rows``)."""
    job_id = new_job_id()
    job = Job(id=job_id, created_at=now(), files=plan.files, api_url=api_url.rstrip("/"), host=host.lower(),
              label=label or ", ".join(f["name"] for f in plan.files),
              fingerprint=fingerprint(plan, api_url, host, mode), headers=plan.headers, mode=mode,
              extra={"enqueued_from": socket.gethostname()})
    store.create_job(job, rows_for(plan) if rows is None else rows)
    return job_id


def publish_ready(store: RowStore, job_id: str, rows: list[Row] | None = None) -> int:
    """Publish every queued row of a job just recorded (``create_job``) that is not waiting for a parent, in input
    order; then mark the job published. ``rows``: the rows as recorded, sparing a read of them; else what
    publishing needs of them is read back a page at a time (``RowStore.glances``), and a row with a generation
    (its parent ran meanwhile and released it: workers may be running) is left alone: it is published already."""
    pages = store.glances(job_id) if rows is None else (rows,)
    parked, start_us = 0, int(time.time() * 1e6)
    settled: list[str] = []
    for page in pages:
        ready = [(r.op, r.row_id, r.title) for r in page
                 if r.state is RowState.QUEUED and not r.waiting_for_parent and not r.gen]
        parked += publish_entries(store, job_id, ready, start_us=start_us + parked)
        parents = [r.row_id for r in page if r.state.is_final and operations.has_dependents(r.op)]
        settled += [i for i, waited in zip(parents, store.have_waiting(job_id, parents), strict=True) if waited]
    sent = parked
    for row in store.rows(job_id, settled):  # rows settled before the run (already in TagMango) hand their ids on
        sent += release_dependents(store, job_id, row)
    store.set_job(job_id, published=True)
    return sent


def enqueue(store: RowStore, plan: PlanLike, api_url: str, host: str, *, label: str | None = None,
            mode: str = "create", rows: Iterable[Row] | None = None) -> str:
    """Record the job (``create_job``) and publish its ready rows. ``rows``: see ``create_job``; when they are
    not a list, they are read back from Redis a page at a time to be published."""
    rows = rows_for(plan) if rows is None else rows
    job_id = create_job(store, plan, api_url, host, label=label, mode=mode, rows=rows)
    publish_ready(store, job_id, rows if isinstance(rows, list) else None)
    return job_id
