"""Rows whose task message is gone (Redis lost its last second of writes, a crash between saving a
retry and publishing it): active rows nobody has touched for longer than any message could be held
back are given a fresh message. Run by the command line while it follows a job, and by ``requeue --stuck``.
"""

from __future__ import annotations

from tasks.rowstore import ACTIVE, QUEUED, RowStore, now
from tasks.settings import Settings


def idle_limit(settings: Settings) -> float:
    """Longer than a retry countdown, a lease and a redelivery after the visibility timeout together."""
    return settings.visibility_timeout + settings.lease_seconds + settings.backoff_max + 60


def stuck_rows(store: RowStore, job_id: str, idle_for: float) -> list[dict]:
    states = store.states(job_id)
    active = [row_id for row_id, state in states.items() if state in ACTIVE]
    cutoff = now() - idle_for
    out = []
    for rec in store.rows(job_id, active):
        if rec["state"] == QUEUED and rec.get("depends_on") and not rec.get("chapter_id"):
            continue  # waiting for its course, which is accounted for on its own
        if (rec.get("updated_at") or 0) < cutoff and (rec.get("next_attempt_at") or 0) < cutoff:
            out.append(rec)
    return out


def republish_stuck(store: RowStore, job_id: str, idle_for: float) -> int:
    from tasks.row_tasks import publish

    rows = stuck_rows(store, job_id, idle_for)
    for rec in rows:
        rec["gen"] = store.next_generation(job_id, rec["row_id"])
        store.save(job_id, rec)
    if rows:
        store.tally(job_id, "recovered", len(rows))
        publish(store, job_id, rows)
    return len(rows)


def resume(store: RowStore, job_id: str) -> int:
    """Give every unfinished row of a job a fresh message (for a job whose workers are all gone).

    Only for a job no live worker is working on (the embedded setup after Ctrl-C or a crash): a new
    generation makes any old message of the row stale, so nothing runs twice.
    """
    from tasks.row_tasks import publish, release_dependents
    from tasks.rowstore import DEAD, SKIPPED, SUCCEEDED

    rows = list(store.rows(job_id))
    ready = []
    for rec in rows:
        if rec["state"] in ACTIVE and not (rec["state"] == QUEUED and rec.get("depends_on")
                                           and not rec.get("chapter_id")):
            rec["gen"] = store.next_generation(job_id, rec["row_id"])
            if rec["state"] != QUEUED:
                rec["state"] = QUEUED
            store.save(job_id, rec)
            ready.append(rec)
    publish(store, job_id, ready)
    for rec in rows:  # courses that finished while their chapters were not yet released
        if rec["kind"] == "course" and rec["state"] in (SUCCEEDED, SKIPPED, DEAD):
            release_dependents(store, job_id, rec)
    store.set_job(job_id, published=True)
    return len(ready)
