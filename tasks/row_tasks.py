"""The Celery tasks: one message per spreadsheet row. Read top to bottom to follow a row to TagMango.

A task message carries only the job id, the row id (``<sheet>:<row>``), the title (for Flower) and the
row's generation; everything else, including the exact request body, is in the row record in Redis, and
the token comes from the worker's environment (tasks.credentials). Each run of a task:

1. drops the message if it is stale (its generation is not the row's current one) or the row is final;
2. takes the row's lease (another copy working on it → try again later);
3. dead-letters a row whose message keeps getting lost (a poison row that kills workers);
4. skips a row the ledger says is done, parks it if the job's credential was refused;
5. waits for the global rate limiter (short waits sleep, long ones re-schedule without spending an attempt);
6. calls TagMango: a create that may already have happened first looks for the course (tasks.adopt);
7. records success in the ledger and the row, releases dependent chapter rows; or classifies the failure:
   transient → retry with backoff (a fresh generation), permanent → dead letter with status, code, body.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import httpx

from tasks import credentials, errors, timeline
from tasks.adopt import Listings, find_created
from tasks.backoff import retry_delay
from tasks.celery_app import app
from tasks.client import TagMangoClient
from tasks.ledger import Ledger, content_hash
from tasks.limiter import RateLimiter, credential_key
from tasks.rowstore import (DEAD, FINAL, QUEUED, RETRYING, RUNNING, SKIPPED, SUCCEEDED, RowStore, now)
from tasks.settings import Settings

log = logging.getLogger("tagmango.rows")

#: Error codes the importer itself gives to dead rows (TagMango's own codes come from its answers).
RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
DEPENDENCY_FAILED = "DEPENDENCY_FAILED"
CREDENTIAL_REFUSED = "CREDENTIAL_REFUSED"
NO_CREDENTIALS = "NO_CREDENTIALS"
WORKER_LOST = "WORKER_LOST"
COURSE_REF_NOT_FOUND = "COURSE_REF_NOT_FOUND"
#: Answers that mean "this credential cannot import here at all": stop sending for the job.
ACCOUNT_ERROR_CODES = {"COURSE_USER_NOT_CREATOR"}


class RowDead(Exception):
    """Raised after a row is dead-lettered, so Flower shows the task as failed with the reason."""


# -- per-process runtime -------------------------------------------------------------------------


class Runtime:
    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self.store = RowStore.from_url(self.settings.redis_url, self.settings.dead_letter_days)
        self.limiter = RateLimiter(self.store.r, self.settings.rate_limit, self.settings.rate_window)
        self._clients: dict[tuple, TagMangoClient] = {}
        self._lock = threading.Lock()

    def client(self, cred: credentials.Credential) -> TagMangoClient:
        key = (cred.api_url, cred.host, content_hash({"t": cred.token}))
        with self._lock:
            if key not in self._clients:
                timeout = httpx.Timeout(connect=5.0, read=self.settings.http_read_timeout, write=10.0, pool=10.0)
                self._clients[key] = TagMangoClient(cred.api_url, cred.token, cred.host, timeout=timeout)
            return self._clients[key]


@functools.cache
def runtime() -> Runtime:
    return Runtime()


# -- the tasks -----------------------------------------------------------------------------------


@app.task(name="tagmango.create_course", bind=True, max_retries=None, throws=(RowDead,))
def create_course(self, job_id: str, row_id: str, title: str, gen: int = 0, slot_at: list | None = None) -> dict:
    """Create Course for one course row (POST /api/v1/external/courses)."""
    return RowRun(self, job_id, row_id, gen, slot_at).run()


@app.task(name="tagmango.patch_chapter", bind=True, max_retries=None, throws=(RowDead,))
def patch_chapter(self, job_id: str, row_id: str, title: str, gen: int = 0, slot_at: list | None = None) -> dict:
    """Update Chapter for one chapter row (PATCH /api/v1/external/chapters/{id})."""
    return RowRun(self, job_id, row_id, gen, slot_at).run()


@app.task(name="tagmango.requeue", ignore_result=False)
def requeue(job_id: str, error_code: str | None = None, http_status: int | None = None,
            rows: list[int] | None = None, all_rows: bool = False) -> dict:
    """Send a job's dead rows again (also callable from Flower's API: /api/task/async-apply/tagmango.requeue)."""
    from tasks.requeue import requeue_rows

    return requeue_rows(runtime().store, job_id, error_code=error_code, http_status=http_status,
                        rows=set(rows) if rows else None, everything=all_rows)


TASK_FOR_KIND = {"course": create_course, "chapter": patch_chapter}


def publish(store: RowStore, job_id: str, records: list[dict]) -> int:
    """Publish one task message per record on one connection to the store's Redis (``gen`` must be current).

    The connection is explicit so that the command line and tests publish to the Redis they were given,
    whatever this process's environment says.
    """
    if not records:
        return 0
    with app.connection_for_write(store.url) as conn, conn.Producer() as producer:
        for rec in records:
            TASK_FOR_KIND[rec["kind"]].apply_async(
                args=(job_id, rec["row_id"], rec["title"][:120]), kwargs={"gen": rec.get("gen", 0)},
                connection=conn, producer=producer)
    return len(records)


# -- one execution of one row's task -------------------------------------------------------------


class RowRun:
    def __init__(self, task: Any, job_id: str, row_id: str, gen: int, slot_at: list | None) -> None:
        self.task, self.job_id, self.row_id, self.gen, self.slot_at = task, job_id, row_id, gen, slot_at
        self.rt = runtime()
        self.store = self.rt.store
        self.s = self.rt.settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def run(self) -> dict:
        rec = self.store.row(self.job_id, self.row_id)
        if rec is None:
            log.warning("row %s of job %s not found (job expired?); message dropped", self.row_id, self.job_id)
            return {"row": self.row_id, "state": "unknown"}
        if self.store.generation(self.job_id, self.row_id) != self.gen:
            return {"row": self.row_id, "state": rec["state"], "stale_message": True}
        if rec["state"] in FINAL:
            if rec["kind"] == "course":
                release_dependents(self.store, self.job_id, rec)
            return _summary(rec)
        if not self.store.take_lease(self.job_id, self.row_id, self.owner, self.s.lease_seconds):
            # Another copy of this message is working on the row; look again when its lease ends.
            raise self.task.retry(countdown=max(1.0, self.store.lease_left(self.job_id, self.row_id)),
                                  kwargs={"gen": self.gen})
        try:
            return self._run_leased(rec)
        finally:
            self.store.release_lease(self.job_id, self.row_id, self.owner)

    def _run_leased(self, rec: dict) -> dict:
        deliveries = self.store.count_delivery(self.job_id, self.row_id, self.gen)
        if deliveries > self.s.max_deliveries:
            return self.dead(rec, {"error_code": WORKER_LOST, "http_status": None, "message":
                                   f"the task for this row was delivered {deliveries - 1} times without finishing "
                                   "(a worker died each time); requeue it once the cause is fixed"})
        job = self.store.job(self.job_id)
        if job is None:
            return {"row": self.row_id, "state": "unknown"}
        if job.get("blocked"):
            return self.dead(rec, _blocked_error(job["blocked"]))
        try:
            cred = credentials.resolve(job["host"], job["api_url"])
        except credentials.NoCredentials as exc:
            error = {"error_code": NO_CREDENTIALS, "http_status": None, "message": str(exc), "row": self.row_id}
            self.store.set_job(self.job_id, blocked=error)
            return self.dead(rec, error)
        self.cred = cred
        self.cred_key = credential_key(cred.api_url, cred.host, cred.token)
        self.client = self.rt.client(cred)
        self.ledger = Ledger(self.store.r, cred.api_url, cred.host)
        try:
            if rec["kind"] == "course":
                return self.create_course(rec)
            return self.patch_chapter(rec)
        except errors.ApiError as exc:
            return self.failed(rec, exc)

    # -- course --------------------------------------------------------------------------------
    def create_course(self, rec: dict) -> dict:
        done = self.ledger.get(rec["key"])
        if done is not None:
            note = "" if done["content"] == content_hash(rec["body"]) else \
                " (the row's content has changed since; courses are not re-created or updated)"
            return self.skipped(rec, done["ids"], f"already created by {done['job']} row {done['row']}{note}")
        self.wait_for_slot()
        self.start_attempt(rec)
        course = None
        if rec.get("create_sent_at"):
            course = find_created(self.client, self.limited, rec["body"], self.ledger, rec["create_sent_at"],
                                  Listings(self.store.r, self.cred_key))
            if course is not None:
                rec["adopted"] = True
                self.store.tally(self.job_id, "adopted")
        if course is None:
            rec["create_sent_at"] = rec.get("create_sent_at") or now()
            self.store.save(self.job_id, rec)  # durable before the request leaves: a crash now means "look first"
            self.send_now()
            course = self.client.create_course(rec["body"])
        ids = {"course_id": course.get("_id") or course.get("id"), "first_chapter": course.get("firstChapter"),
               "second_chapter": course.get("secondChapter")}
        if not ids["course_id"]:
            raise errors.ServerError("Create Course answered without a course id", status=200, maybe_committed=True)
        self.ledger.record(rec["key"], ids, rec["body"], self.job_id, self.row_id)
        self.ledger.claim(ids["course_id"])
        result = self.succeeded(rec, ids)
        release_dependents(self.store, self.job_id, rec)
        return result

    # -- chapter -------------------------------------------------------------------------------
    def patch_chapter(self, rec: dict) -> dict:
        if not rec.get("chapter_id"):
            course = self.ledger.get(rec["course_ref"]) if rec.get("course_ref") else None
            chapter_id = (course or {}).get("ids", {}).get(f"{rec.get('chapter_slot')}_chapter")
            if not chapter_id:
                return self.dead(rec, {"error_code": COURSE_REF_NOT_FOUND, "http_status": None, "message":
                                       f"course_ref {rec.get('course_ref', '').removeprefix('title:')!r} is not a "
                                       "course of this import or an earlier import to this host"})
            rec["chapter_id"] = chapter_id
        ledger_key = f"chapter:{rec['chapter_id']}"
        done = self.ledger.get(ledger_key)
        if done is not None and done["content"] == content_hash(rec["body"]):
            return self.skipped(rec, {"chapter_id": rec["chapter_id"]},
                                f"already updated with this content by {done['job']} row {done['row']}")
        self.wait_for_slot()
        self.start_attempt(rec)
        self.send_now()
        self.client.update_chapter(rec["chapter_id"], rec["body"])
        self.ledger.record(ledger_key, {"chapter_id": rec["chapter_id"]}, rec["body"], self.job_id, self.row_id)
        return self.succeeded(rec, {"chapter_id": rec["chapter_id"]})

    # -- the rate limiter ----------------------------------------------------------------------
    def wait_for_slot(self) -> None:
        """Our turn on the schedule: sleep if it is near, otherwise re-schedule keeping the slot.

        A task back from a re-schedule uses the slot it reserved, also when it comes back late (a busy
        worker). The send itself is admitted by ``send_now`` at the last moment, after the bookkeeping, so
        that what the limiter's send log records is as close as possible to what TagMango counts.
        """
        limiter = self.rt.limiter
        if self.slot_at is not None:  # [slot time, Redis time it was reserved at]
            slot, reserved_at = self.slot_at
            late = time.time() - slot
            if late <= self.s.rate_window and limiter.cooled_since(self.cred_key) <= reserved_at:
                time.sleep(max(0.0, -late))
                if limiter.cooled_since(self.cred_key) <= reserved_at:
                    return
        reservation = limiter.reserve(self.cred_key)
        if reservation.granted and reservation.wait <= self.s.max_limiter_sleep:
            time.sleep(reservation.wait)
            if limiter.cooled_since(self.cred_key) <= reservation.at:
                return
            # A 429 arrived while we slept: our slot predates the cool-down; take a new one later.
            self.reschedule(self.s.rate_window / 2, reason="rate limit cool-down")
        slot_at = [time.time() + reservation.wait, reservation.at] if reservation.granted else None
        self.reschedule(max(0.05, reservation.wait - 0.5), slot_at=slot_at, reason="waiting for the rate limit")

    def send_now(self) -> None:
        """Admit this request in the send log right before it leaves (waits a few ms if a late send ahead of
        us filled the window, or out a cool-down)."""
        self.rt.limiter.acquire_now(self.cred_key)
        self.store.tally(self.job_id, "requests")
        timeline.record(self.store.r, self.job_id, "sent")

    def limited(self, fn: Any) -> Any:
        """Run one extra call (a lookup) under the limiter, ahead of the rows waiting for their slots."""
        self.send_now()
        return fn()

    # -- state changes -------------------------------------------------------------------------
    def start_attempt(self, rec: dict) -> None:
        rec["state"] = RUNNING
        rec["attempts"] = rec.get("attempts", 0) + 1
        rec["round_attempts"] = rec.get("round_attempts", 0) + 1
        rec["next_attempt_at"] = None
        self.store.save(self.job_id, rec)

    def succeeded(self, rec: dict, ids: dict) -> dict:
        rec.update(state=SUCCEEDED, result=ids, error=None, finished_at=now())
        self.store.save(self.job_id, rec)
        log.info("%s %s succeeded: %s", self.job_id, self.row_id, ids)
        return _summary(rec)

    def skipped(self, rec: dict, ids: dict, reason: str) -> dict:
        rec.update(state=SKIPPED, result=ids, reason=reason, error=None, finished_at=now())
        self.store.save(self.job_id, rec)
        if rec["kind"] == "course":
            release_dependents(self.store, self.job_id, rec)
        return _summary(rec)

    def dead(self, rec: dict, error: dict) -> dict:
        mark_dead(self.store, self.job_id, rec, error)
        raise RowDead(f"{self.row_id}: {error.get('error_code') or error.get('http_status')}: {error.get('message')}")

    def failed(self, rec: dict, exc: errors.ApiError) -> dict:
        error = {**exc.as_dict(), "at": now(), "attempt": rec.get("attempts", 0)}
        rec.setdefault("history", []).append(error)
        rec["history"] = rec["history"][-20:]
        if not exc.retryable:
            if exc.status == 401 or exc.error_code in ACCOUNT_ERROR_CODES:
                self.store.set_job(self.job_id, blocked={**exc.as_dict(), "row": self.row_id})
            return self.dead(rec, exc.as_dict())
        if isinstance(exc, errors.RateLimited):
            self.store.tally(self.job_id, "rate_limited")
            timeline.record(self.store.r, self.job_id, "429")
            self.rt.limiter.cool_down(self.cred_key, max(exc.retry_after or 0.0, self.s.rate_window / 2))
        if rec.get("round_attempts", 0) >= self.s.max_attempts:
            return self.dead(rec, {**exc.as_dict(), "error_code": RETRIES_EXHAUSTED,
                                   "message": f"gave up after {rec['round_attempts']} attempts; last error: "
                                              f"{exc.as_dict()['http_status'] or exc.as_dict()['kind']} "
                                              f"{exc.error_code or ''} {exc.message}".replace("  ", " ")})
        delay = retry_delay(rec["round_attempts"], self.s.backoff_base, self.s.backoff_max,
                            getattr(exc, "retry_after", None))
        rec.update(state=RETRYING, next_attempt_at=now() + delay, error=exc.as_dict())
        self.store.tally(self.job_id, "retries")
        timeline.record(self.store.r, self.job_id, "retry")
        log.info("%s %s: %s; retry in %.1fs", self.job_id, self.row_id, exc.as_dict()["kind"], delay)
        self.reschedule(delay, record=rec, exc=exc)
        return {}  # not reached

    def reschedule(self, countdown: float, *, record: dict | None = None, slot_at: list | None = None,
                   reason: str = "", exc: Exception | None = None) -> None:
        """Hand the row to a new task message (new generation) after ``countdown`` seconds."""
        gen = self.store.next_generation(self.job_id, self.row_id)
        if record is not None:
            self.store.save(self.job_id, record)
        raise self.task.retry(countdown=countdown, kwargs={"gen": gen, "slot_at": slot_at}, exc=exc,
                              max_retries=None)


# -- shared with requeue -------------------------------------------------------------------------


def _summary(rec: dict) -> dict:
    return {"row": rec["row_id"], "state": rec["state"], "result": rec.get("result")}


def _blocked_error(blocked: dict) -> dict:
    cause = f"{blocked.get('http_status') or ''} {blocked.get('error_code') or ''} {blocked.get('message') or ''}"
    return {"error_code": CREDENTIAL_REFUSED, "http_status": None,
            "message": f"not sent: this job's credential was refused on row {blocked.get('row')} "
                       f"({' '.join(cause.split())}); fix it and requeue"}


def mark_dead(store: RowStore, job_id: str, rec: dict, error: dict) -> None:
    rec.update(state=DEAD, error={k: v for k, v in error.items() if k != "row"}, next_attempt_at=None,
               finished_at=now())
    store.save(job_id, rec)
    log.info("%s %s dead: %s %s", job_id, rec["row_id"], error.get("error_code") or error.get("http_status"),
             error.get("message"))
    if rec["kind"] == "course":
        release_dependents(store, job_id, rec)


def release_dependents(store: RowStore, job_id: str, course: dict) -> None:
    """Publish the chapter rows waiting for this course (or dead-letter them if the course is dead).

    Idempotent: a chapter already released (it has its chapter id) or already final is left alone, so a
    redelivered course message can call this again safely.
    """
    waiting = store.waiting_on(job_id, course["row_id"])
    if not waiting:
        return
    ready = []
    for chapter in store.rows(job_id, waiting):
        if chapter["state"] != QUEUED or chapter.get("chapter_id"):
            continue
        if course["state"] in (SUCCEEDED, SKIPPED):
            chapter_id = (course.get("result") or {}).get(f"{chapter['chapter_slot']}_chapter")
            if not chapter_id:
                mark_dead(store, job_id, chapter, {"error_code": DEPENDENCY_FAILED, "http_status": None,
                                                   "message": f"course row {course['row_id']} has no "
                                                              f"{chapter['chapter_slot']} chapter id"})
                continue
            chapter["chapter_id"] = chapter_id
            chapter["gen"] = store.next_generation(job_id, chapter["row_id"])
            store.save(job_id, chapter, allowed_from=[QUEUED])
            ready.append(chapter)
        elif course["state"] == DEAD:
            why = course.get("error") or {}
            mark_dead(store, job_id, chapter, {
                "error_code": DEPENDENCY_FAILED, "http_status": None,
                "message": f"course row {course['row_id']} is dead "
                           f"({why.get('error_code') or why.get('http_status') or ''}); requeue it to send this row"})
    if ready:
        publish(store, job_id, ready)
