"""A row run's side of the rate limiter (``tasks.runner.RowRun``'s base class, kept here for the size of
tasks/runner.py): the admission of its requests through the credential's door (``tasks.gateway``), with the row's
ledger entry read in the same round trip and the start of its attempt saved in it, the lease checked before each
further request, and its answered requests marked done in the limiter.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from tasks import timeline
from tasks.gateway import Call, Door, Pass, Wait
from tasks.ledger import Ledger
from tasks.operations import Operation
from tasks.outcomes import Message
from tasks.park import give_back
from tasks.rows import Row, RowState
from tasks.rowstore import RowStore, now
from tasks.settings import Settings

#: A request after the row's first (a lookup's next page, a read-back) waits this long at most for room in the
#: budget; then the attempt fails as throttled and the row retries later.
MAX_SEND_WAIT_S = 120.0


class LeaseLost(Exception):
    """This run outlived its lease and another copy of the message took the row: it must not send."""


def attempt_start(op: Operation, row: Row) -> Row:
    """A copy of ``row`` as its attempt starts: running, one more attempt; a create not sent before gets its
    ``sent_at`` now (saved with the start, before the request leaves: a crash from then on means "look first")."""
    start = copy.copy(row)
    start.state = RowState.RUNNING
    start.attempts += 1
    start.round_attempts += 1
    start.next_attempt_at = None
    if op.creates and not row.sent_at:
        start.sent_at = now()
    return start


class RowAdmissions:
    """What ``RowRun`` keeps about its requests, and the steps that admit them, send them and close their flights."""

    msg: Message
    store: RowStore
    settings: Settings
    job_id: str
    row_id: str
    token: str
    door: Door | None
    #: The limiter's admission for the row's next request, and whether any request was admitted.
    admitted_pass: Pass | None
    admitted: bool
    #: Requests answered (with the time their answer came back) and not yet marked done in the limiter: the row's
    #: next write does it (``close_flights``, or ``RowRun.finish`` in its own round trip).
    answered: list[tuple[Pass, float]]
    #: A request of this run went out (``send``).
    requested: bool
    waiting_for_limit: bool
    #: The admission in ``admitted_pass`` saved the attempt's start and counted its request (``wait_for_slot``).
    prepared: bool
    #: The timeline field of a request counted with the attempt's start that has not left (yet): taken back if it
    #: never does (``settle_slot``); '' when none.
    counted_unsent: str

    def wait_for_slot(self, ledger: Ledger | None = None, ledger_key: str = "",
                      start: Row | None = None) -> float | None:
        """Be admitted by the limiter for the request this row is about to send (None: go), or say how long the
        row must wait (the caller parks it). With ``ledger``, the first look is a gate, in the same round trip: the
        row's ledger entry is read (``ledger.seed``: the operation's ``check_done`` answers from it) and, when there
        is one, nothing is admitted and None comes back: look at it first (most such rows are done: skipped).
        With ``start`` (the row as its attempt starts, ``attempt_start``), the admission saves it and counts the
        request, in its round trip (``RowStore.start_step``, what ``before_request`` does for a later request):
        admitted only if the lease is still ours (``LeaseLost``).

        A message the dispatcher handed out carries its slot, which is now (or a few ms away: sleep). What
        bounds the requests is the admission (``tasks.limiter``): every request counted from now until its
        answer is back. A short wait for room sleeps; a longer one (a cool-down after a 429) parks the row
        until then, as a new generation, without spending an attempt.
        """
        if self.msg.slot:
            early = self.msg.slot.at - time.time()
            if early > 0.002:
                time.sleep(min(early, self.settings.max_limiter_sleep))
        sent_field = timeline.field("sent")
        then, allowed = self.store.start_step(self.job_id, self.row_id, self.token, self.settings.lease_seconds,
                                              timeline.key(self.job_id), sent_field, self.store.ttl,
                                              start) if start is not None else (None, frozenset())
        deadline = time.monotonic() + self.settings.max_limiter_sleep
        while True:
            got = self.door.try_admit(read=(ledger.key, ledger_key) if ledger is not None else None, then=then)
            if ledger is not None:
                entry = got.read if isinstance(got, Wait) else None
                ledger.seed(ledger_key, entry)
                if entry is not None:
                    return None
            if isinstance(got, Pass):
                self.admitted_pass, self.admitted = got, True
                if then is not None:  # the attempt's start is saved, its first request counted
                    self.prepared, self.counted_unsent = True, sent_field
                return None
            if got.stopped is not None:  # the start refused: the lease is not ours, or the save was illegal
                if not self.store.started(self.job_id, start, got.stopped, allowed):
                    raise LeaseLost
                raise RuntimeError(f"{self.job_id} {self.row_id}: the start of the attempt answered {got.stopped!r}")
            if time.monotonic() + got.seconds > deadline:
                return got.seconds
            time.sleep(got.seconds)

    def unadmit(self) -> None:
        """The row needs no request after all (the ledger says its work is done): give the admission back, and,
        unless a request went out already, the dispatcher's slot with it (``settle_slot``)."""
        if self.admitted_pass is not None:
            self.door.release(self.admitted_pass)
            self.admitted_pass = None
        self.admitted = self.requested

    def send(self, fn: Call) -> object:
        """One request of this row, through the credential's door: the admission ``wait_for_slot`` got is used if
        still fresh, else the door admits the request (waiting if the budget is full or out a cool-down); then,
        just before it leaves, ``before_request``."""
        admitted, self.admitted_pass = self.admitted_pass, None
        self.admitted = self.requested = True
        self.close_flights()

        def leaving(client: Any) -> object:
            self.counted_unsent = ""  # the request counted ahead is this one
            return fn(client)

        try:
            return self.door.send(leaving, admitted=admitted, job_id=self.job_id, max_wait=MAX_SEND_WAIT_S,
                                  before=self.before_request, prepared=self.prepared and admitted is not None,
                                  answered=lambda *done: self.answered.append(done))
        finally:
            self.prepared = False

    def close_flights(self) -> None:
        """Mark the row's answered requests done in the limiter now (a next request, or a run ending without
        ``finish``, which does it in its own round trip)."""
        while self.answered:
            self.door.done(*self.answered.pop())

    def before_request(self) -> None:
        """In one round trip before each request but the attempt's first (whose admission did this,
        ``wait_for_slot``), and before that one too if the door had to admit it again (``RowStore.before_request``):
        the row's lease is checked and renewed (a run that outlived it, e.g. waiting for another row's lookup, must
        not send what the copy that took the row over may send: ``LeaseLost``, and the door gives the admission
        back), and the request is counted in the job's tallies and timeline, unless counted with the start."""
        self.prepared = False
        if not self.store.before_request(self.job_id, self.row_id, self.token, self.settings.lease_seconds,
                                         timeline.key(self.job_id),
                                         "" if self.counted_unsent else timeline.field("sent"), self.store.ttl):
            raise LeaseLost

    def settle_slot(self) -> None:
        """After the run: answered requests marked done, an admission not used given back (and the request counted
        with it, if it never left), and the dispatcher's slot if nothing was sent."""
        self.close_flights()
        if self.admitted_pass is not None:
            self.door.release(self.admitted_pass)
            self.admitted_pass = None
        if self.counted_unsent:
            self.store.take_back_request(self.job_id, self.counted_unsent)
            self.counted_unsent = ""
        if self.msg.slot and not self.admitted and not self.waiting_for_limit:
            give_back(self.store, self.msg.slot.target)

