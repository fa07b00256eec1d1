"""One execution of one row's task message: read it top to bottom to follow a row to TagMango.

``run_row(services, message)`` returns what the Celery task must do next (``Finished``, ``Later`` or
``Dead``) instead of raising Celery's exceptions, so every branch can be run in the test process against a
real Redis and the sandbox. Each run:

1. drops the message if it is stale (its generation is not the row's current one); a finished row only
   re-releases its dependents (a redelivered parent message);
2. takes the row's lease (another copy working on it → try again when its lease ends);
3. dead-letters a row whose message keeps getting lost (a poison row that kills workers: WORKER_LOST);
4. dead-letters the row unsent if the job's credential was refused or this process has none;
5. lets the operation resolve ids it looks up (COURSE_REF_NOT_FOUND);
6. is admitted by the global rate limiter (``tasks.admissions``), reading the row's ledger entry and saving the start
   of its attempt in the same round trip, and skips work the ledger says is done (short waits sleep, long ones park
   the row without spending an attempt);
7. calls TagMango through the credential's door (``tasks.gateway``); a create that may have happened looks first;
8. records success (ledger, row, and the request done in the limiter) in one round trip and releases the rows
   waiting for it, or lets ``tasks.retry`` decide the failure.
"""

from __future__ import annotations

import logging
import os

from redis.exceptions import LockError
from redis.lock import Lock

from tasks import errors, operations, timeline
from tasks.admissions import LeaseLost, RowAdmissions, attempt_start
from tasks.adopt import Listings
from tasks.credentials import NoCredentials
from tasks.job import Blocked, Job
from tasks.ledger import PendingLedger
from tasks.operations import CallContext, Operation, Skip
from tasks.outcomes import Dead, Finished, Later, Message, Outcome, blocked_failure, summary
from tasks.park import later_write
from tasks.producer import mark_dead, release_dependents
from tasks.retry import GiveUp, decide, failure_of
from tasks.rows import ErrorCode, Row, RowFailure, RowState
from tasks.rowstore import now
from tasks.services import Services

log = logging.getLogger("tagmango.rows")


def run_row(services: Services, message: Message) -> Outcome:
    return RowRun(services, message).run()


class RowRun(RowAdmissions):
    def __init__(self, services: Services, message: Message) -> None:
        self.services, self.msg = services, message
        self.store, self.settings = services.store, services.settings
        self.job_id, self.row_id = message.job_id, message.row_id
        self.door, self.admitted_pass, self.answered, self.requested = None, None, [], False
        self.prepared, self.counted_unsent = False, ""
        self.lease: Lock | None = None
        #: Our lease token while we hold the row; the lease was released by the run's last script.
        self.token = ""
        self.lease_released = False
        self.ledger: PendingLedger | None = None
        self.row: Row | None = None
        self.job: Job | None = None
        self.admitted = self.waiting_for_limit = False

    def run(self) -> Outcome:
        try:
            return self.run_message()
        except LeaseLost:  # another copy of the message owns the row now: it sends, not us
            return Finished({"row": self.row_id, "state": "running", "lease_lost": True})
        finally:
            self.settle_slot()

    def run_message(self) -> Outcome:
        # One round trip: the row, its generation, the lease, the delivery count and the job (RowStore.begin).
        token = os.urandom(16).hex()
        begun = self.store.begin(self.job_id, self.row_id, self.msg.gen, token, self.settings.lease_seconds)
        row = begun.row
        if row is None:
            log.warning("row %s of job %s not found (job expired?); message dropped", self.row_id, self.job_id)
            return Finished({"row": self.row_id, "state": "unknown"})
        if begun.status == "stale":
            return Finished({**summary(row), "stale_message": True})
        if begun.status == "final":
            self.release(row)
            return Finished(summary(row))
        if begun.status == "leased":
            return Later(max(1.0, begun.lease_left), self.msg.gen, reason="another copy of this message holds the row")
        lease = self.lease = self.store.lease(self.job_id, self.row_id, self.settings.lease_seconds)
        lease.local.token = token.encode()  # taken by begin: the lock object releases and renews it
        self.token = token
        try:
            return self.run_leased(row, begun.deliveries, begun.job)
        finally:
            if not self.lease_released:
                try:
                    lease.release()
                except LockError:  # expired and maybe taken by another copy: nothing of ours to release
                    pass

    def run_leased(self, row: Row, deliveries: int, job: Job | None) -> Outcome:
        self.row, self.job = row, job
        if deliveries > self.settings.max_deliveries:
            return self.dead(row, RowFailure(ErrorCode.WORKER_LOST,
                                             f"the task for this row was delivered {deliveries - 1} times without "
                                             "finishing (a worker died each time); requeue it once the cause is fixed"))
        if job is None:
            return Finished({"row": self.row_id, "state": "unknown"})
        if job.blocked:
            return self.dead(row, blocked_failure(job.blocked))
        try:
            cred = self.services.credentials.resolve(job.host, job.api_url)
        except NoCredentials as exc:
            failure = RowFailure(ErrorCode.NO_CREDENTIALS, str(exc))
            self.store.set_job(self.job_id, blocked=Blocked(failure, self.row_id))
            return self.dead(row, failure)
        self.door = self.services.gateway.door(cred)
        redis = self.services.redis
        self.ledger = PendingLedger(redis, cred.api_url, cred.host)
        ctx = CallContext(job_id=self.job_id, call=self.send, ledger=self.ledger,
                          listings=Listings(redis, self.door.key))
        try:
            return self.call(operations.get(row.op), ctx, row)
        except errors.ApiError as exc:
            return self.failed(row, exc)

    def call(self, op: Operation, ctx: CallContext, row: Row) -> Outcome:
        failure = op.resolve(ctx, row)
        if failure is not None:
            return self.dead(row, failure)
        ledger_key = op.ledger_key(row)
        may_have_committed = op.creates and bool(row.sent_at)
        start = attempt_start(op, row)
        wait = self.wait_for_slot(ctx.ledger, ledger_key, start=start)
        try:
            skip = op.check_done(ctx, row)  # answered by the entry read with the admission
        except BaseException:
            self.unadmit()
            raise
        finally:
            ctx.ledger.forget(ledger_key)
        if skip is not None:
            self.unadmit()
            return self.skipped(row, skip)
        if wait is None and self.admitted_pass is None:  # stopped at a ledger entry that says "not done": go on
            wait = self.wait_for_slot(start=start)
        if wait is not None:
            self.waiting_for_limit = True
            return self.later(wait, reason="waiting for the rate limit")
        self.start_attempt(row, start)
        result = None
        if may_have_committed:
            result = op.find_committed(ctx, row)
            if result is not None:
                row.adopted = True
                self.store.tally(self.job_id, "adopted")
        if result is None:
            result = op.call(ctx, row)
            if isinstance(result, Skip):  # the call found the work cannot be done, and that is no failure
                return self.skipped(row, result)
        result = {**row.ids, **result}  # a row's result carries what it was given: its ancestors' ids
        op.record(ctx, row, result)
        row.outcome = op.outcome(row)
        return self.succeeded(row, result)

    # -- state changes -------------------------------------------------------------------------
    def release(self, row: Row) -> None:
        release_dependents(self.store, self.job_id, row)

    @staticmethod
    def start_attempt(row: Row, start: Row) -> None:
        """The attempt starts: ``row`` becomes ``start`` (``attempt_start``), which its admission saved."""
        row.state, row.attempts, row.round_attempts = start.state, start.attempts, start.round_attempts
        row.next_attempt_at, row.sent_at = start.next_attempt_at, start.sent_at

    def finish(self, row: Row) -> None:
        """Save the row's final state with the ledger entries its operation recorded and release the lease, in one
        round trip (``RowStore.finish``); then release the rows waiting for it, if any."""
        pending = self.ledger.pending if self.ledger is not None else []
        # The last answered request is marked done in the limiter by the same round trip (tasks.lua).
        last = self.answered.pop() if self.answered else None
        try:
            self.close_flights()
            _, waiting = self.store.finish(self.job_id, row, token=self.token, ledger=pending,
                                           rider=self.door.done_rider(*last) if last else None)
        except BaseException:
            if last is not None:
                self.answered.append(last)  # marked done by ``settle_slot``, if Redis answers then
            raise
        finally:
            self.lease_released = True
            if self.ledger is not None:
                self.ledger.pending = []
        if waiting:
            self.release(row)

    def succeeded(self, row: Row, result: dict) -> Finished:
        row.state, row.result, row.error, row.finished_at = RowState.SUCCEEDED, result, None, now()
        self.finish(row)
        log.info("%s %s succeeded: %s", self.job_id, self.row_id, result)
        return Finished(summary(row))

    def skipped(self, row: Row, skip: Skip) -> Finished:
        row.state, row.result, row.reason, row.error, row.finished_at = (RowState.SKIPPED, skip.result, skip.reason,
                                                                         None, now())
        row.outcome = skip.outcome
        self.finish(row)
        return Finished(summary(row))

    def dead(self, row: Row, failure: RowFailure) -> Dead:
        if self.ledger is not None:
            self.ledger.flush()
        mark_dead(self.store, self.job_id, row, failure)
        return Dead(summary(row), failure)

    def failed(self, row: Row, exc: errors.ApiError) -> Outcome:
        if self.ledger is not None:
            self.ledger.flush()
        failure = failure_of(exc)
        row.history = [*row.history, {**failure.as_dict(), "at": now(), "attempt": row.attempts}][-20:]
        decision = decide(exc, row, self.settings)
        if isinstance(decision, GiveUp):
            if decision.blocks_job:
                self.store.set_job(self.job_id, blocked=Blocked(decision.failure, self.row_id))
            return self.dead(row, decision.failure)
        row.state, row.next_attempt_at, row.error = RowState.RETRYING, now() + decision.seconds, failure
        log.info("%s %s: %s; retry in %.1fs", self.job_id, self.row_id, failure, decision.seconds)
        return self.later(decision.seconds, row=row, error=exc)

    def later(self, countdown: float, *, row: Row | None = None, reason: str = "",
              error: Exception | None = None) -> Later:
        """Hand the row to a new message (a new generation) after ``countdown`` seconds, in one round trip
        (``RowStore.later``): the generation goes up, ``row`` (a retry) is saved and counted in the job's retries and
        timeline, the lease released, and the row parked until then as ``park_later`` parks it (tasks.park)."""
        entry = (self.row.op, self.row.row_id, self.row.title)
        try:
            gen = self.store.later(self.job_id, self.row_id, later_write(self.job, entry, countdown), row=row,
                                   token=self.token, retry_field=timeline.field("retry") if row is not None else "",
                                   ttl_s=self.store.ttl)
        finally:
            self.lease_released = True
        return Later(countdown, gen, reason, error, parked=True)
