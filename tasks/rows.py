"""The row record: one unit of work (one TagMango call), its state machine, and why it failed.

A ``Row`` is what the importer plans and what a worker runs. It is stored as JSON in the row store
(``tasks.rowstore``); task messages only point at it (job id, row id, generation). Which TagMango call it
makes is its ``op`` (a name in ``tasks.operations``); ``kind`` is the kind of object that call touches
(course, module, chapter), kept on the row for progress per kind. A module or lesson of a course tree has its
``place`` in it.

The legal state changes are the ``TRANSITIONS`` table; the row store refuses any other.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any


class RowState(str, Enum):
    QUEUED = "queued"  # waiting for its message to run (or for its parent row)
    RUNNING = "running"  # a worker is making its call
    RETRYING = "retrying"  # a transient failure; a later message tries again
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # dead-lettered with its reason; requeue brings it back
    INVALID = "invalid"  # never sent: the spreadsheet row breaks a rule
    SKIPPED = "skipped"  # never sent: already done (ledger) or a repeat of another row

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in FINAL

    @property
    def is_active(self) -> bool:
        return self in ACTIVE


STATES = tuple(RowState)
FINAL = frozenset({RowState.SUCCEEDED, RowState.DEAD, RowState.INVALID, RowState.SKIPPED})
ACTIVE = frozenset({RowState.QUEUED, RowState.RUNNING, RowState.RETRYING})
#: Where each state may go next. A state may "go" to itself: a save that changes other fields.
TRANSITIONS: dict[RowState, frozenset[RowState]] = {
    RowState.QUEUED: frozenset({RowState.QUEUED, RowState.RUNNING, RowState.SKIPPED, RowState.DEAD}),
    RowState.RUNNING: frozenset({RowState.RUNNING, RowState.RETRYING, RowState.SUCCEEDED, RowState.SKIPPED,
                                 RowState.DEAD, RowState.QUEUED}),
    RowState.RETRYING: frozenset({RowState.RETRYING, RowState.RUNNING, RowState.SKIPPED, RowState.DEAD,
                                  RowState.QUEUED}),
    RowState.DEAD: frozenset({RowState.QUEUED, RowState.SKIPPED}),  # requeue (which may find the work done)
    RowState.SUCCEEDED: frozenset(),
    RowState.SKIPPED: frozenset(),
    RowState.INVALID: frozenset(),
}


@functools.cache
def sources_of(state: RowState) -> frozenset[RowState]:
    """The states a row may be in before it moves to ``state``."""
    return frozenset(s for s, targets in TRANSITIONS.items() if state in targets)


class ErrorCode:
    """Error codes the importer itself gives to dead rows (TagMango's own come from its answers)."""

    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    DEPENDENCY_FAILED = "DEPENDENCY_FAILED"
    CREDENTIAL_REFUSED = "CREDENTIAL_REFUSED"
    NO_CREDENTIALS = "NO_CREDENTIALS"
    WORKER_LOST = "WORKER_LOST"
    COURSE_REF_NOT_FOUND = "COURSE_REF_NOT_FOUND"
    NOT_IN_TAGMANGO = "NOT_IN_TAGMANGO"  # update mode: the object does not exist, and update mode creates nothing
    AMBIGUOUS_COURSE = "AMBIGUOUS_COURSE"  # several courses in TagMango could be this row's


@dataclass(frozen=True)
class RowFailure:
    """Why a row failed: TagMango's answer (status, errorCode, message) or one of our own ``ErrorCode``s."""

    code: str | None
    message: str
    http_status: int | None = None
    kind: str | None = None  # the error class, e.g. "PermanentApiError"

    def as_dict(self) -> dict[str, Any]:
        return {"error_code": self.code, "http_status": self.http_status, "message": self.message, "kind": self.kind}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RowFailure:
        return cls(code=data.get("error_code"), message=data.get("message") or "", http_status=data.get("http_status"),
                   kind=data.get("kind"))

    @property
    def label(self) -> str:
        """The code, else the HTTP status, for grouping dead letters."""
        return self.code or (str(self.http_status) if self.http_status else "ERROR")

    def __str__(self) -> str:
        return f"{self.label}: {self.message}"


@dataclass(slots=True)
class Place:
    """Where a row's module or lesson (``Row.kind``) is in a course tree.

    Planned from a curriculum (importer/ingest/tree.py) ``by_parent``: which object fills the place (a placeholder
    TagMango made, taken over, or a new one) is decided when the row runs, from its parent's result
    (tasks.operations.tree). Matching (importer/matching) turns that off when it finds the object in TagMango, and
    gives what it deletes a place in its course too.
    """

    course_key: str  # the key of the course's row
    course_ref: str = ""  # the course_ref the file gives
    index: int = 0  # among the course's modules, or the module's lessons, from 0
    module_position: int | None = None  # 1, 2, 3...
    chapter_position: int | None = None
    lessons: int = 0  # a module's lessons: how many of the placeholder chapters it takes over
    by_parent: bool = True
    takeover: bool = False  # it took a placeholder TagMango made over (set when the row runs)


@dataclass(slots=True)  # no per-row __dict__: a 100,000-row plan is about 120 MB smaller
class Row:
    row_id: str  # "<sheet>:<spreadsheet row>", unique in the job
    op: str  # the operation (tasks.operations) this row's call is
    kind: str  # course | module | chapter: the object the call touches
    file: str
    sheet: str
    row: int  # the row number the spreadsheet shows (header = 1)
    key: str  # stable idempotency key (see the README: keys and repeats)
    title: str
    body: dict = field(default_factory=dict)  # the exact request body
    state: RowState = RowState.QUEUED
    #: Inputs of the operation that are not in the body, from its sheet (a chapter patch's course_ref, chapter_slot).
    params: dict = field(default_factory=dict)
    place: Place | None = None
    #: What matching found changed, ``{field: [old, new]}``: the body of an update, the dry run's diff.
    diff: dict | None = None
    #: The snapshot: the live values this row overwrites or deletes, as matching read them (``{field: old}``,
    #: API names), kept with the row (so it expires with the job) for the results file and ``undo``. Bounded by
    #: ``SNAPSHOT_MAX_CHARS``; fields that did not fit are listed under ``"_missing"``.
    before: dict | None = None
    #: Ids the call needs (the chapter to patch, the course it belongs to): from the sheet or from the parent.
    ids: dict = field(default_factory=dict)
    parent: str | None = None  # the row this one waits for
    released: bool = False  # the parent's ids have been copied in
    result: dict | None = None  # ids the call produced or found
    error: RowFailure | None = None
    reason: str | None = None  # why a row was skipped or is invalid
    #: What was (or, before the run, will be) done: created, updated (fields), unchanged, deleted, exists...
    outcome: str | None = None
    history: list = field(default_factory=list)  # earlier failures, oldest first
    attempts: int = 0  # calls over the row's life
    round_attempts: int = 0  # calls since the last requeue
    requeues: int = 0
    gen: int = 0  # generation of the row's one live task message
    #: When a call that is not idempotent may first have reached TagMango: later attempts look before sending.
    sent_at: float | None = None
    adopted: bool = False
    source: dict = field(default_factory=dict)  # the row's cells as read, for the results file
    #: Made by the planner (a tree's course or module) from another spreadsheet row: not a line of its own in
    #: the results file, where the rows made from it show its ids.
    derived: bool = False
    next_attempt_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None

    # -- predicates ------------------------------------------------------------------------
    @property
    def is_final(self) -> bool:
        return self.state.is_final

    @property
    def is_active(self) -> bool:
        return self.state.is_active

    @property
    def waiting_for_parent(self) -> bool:
        """Queued behind a parent row of this job that has not handed over its ids yet."""
        return self.state is RowState.QUEUED and self.parent is not None and not self.released

    @property
    def died_of_parent(self) -> bool:
        return self.state is RowState.DEAD and self.error is not None and self.error.code == ErrorCode.DEPENDENCY_FAILED

    @property
    def placed_by_parent(self) -> bool:
        """A row of a tree whose call its parent's result decides (``Place.by_parent``)."""
        return self.place is not None and self.place.by_parent

    @property
    def done(self) -> bool:
        """Finished with its object existing in TagMango (made, updated or found)."""
        return self.state in (RowState.SUCCEEDED, RowState.SKIPPED)

    # -- settled before it is sent (matching against TagMango) ---------------------------------
    def skip(self, result: dict | None, outcome: str, reason: str) -> None:
        """Nothing to send: TagMango has the row's object (``result``: its ids) as the mode wants it."""
        self.state, self.result, self.outcome, self.reason = RowState.SKIPPED, result, outcome, reason
        self.finished_at = time.time()

    def die(self, code: str, message: str) -> None:
        """Dead before it is sent (the object it needs is not in TagMango, or it is not clear which it is)."""
        self.state, self.error, self.finished_at = RowState.DEAD, RowFailure(code, message), time.time()

    def become_update(self, op: str, ids: dict, body: dict, diff: dict) -> None:
        """Run as a partial update (``op``, ``body``: what changed) of an object that exists, known by ``ids``:
        right away, needing nothing from a parent (its place, if any, is no longer the parent's to decide)."""
        self.op, self.ids, self.body, self.diff, self.released, self.outcome = op, ids, body, diff, True, "update"
        self.before = snapshot({name: change[0] for name, change in diff.items()})
        if self.place is not None:
            self.place.by_parent = self.place.takeover = False

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["error"] = self.error.as_dict() if self.error else None
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        known = _ROW_FIELDS
        values = {k: v for k, v in data.items() if k in known}
        values["state"] = RowState(values.get("state", RowState.QUEUED))
        if values.get("error") is not None:
            values["error"] = RowFailure.from_dict(values["error"])
        if values.get("place") is not None:
            values["place"] = Place(**values["place"])
        elif "place" not in data:
            _from_params(values)
        return cls(**values)

    @classmethod
    def from_json(cls, raw: str) -> Row:
        return cls.from_dict(json.loads(raw))


_ROW_FIELDS = frozenset(f.name for f in fields(Row))  # (``fields`` per call was most of decoding a row)

#: At most this many characters of JSON per row's snapshot (a description may be long; 50,000 is the file's limit).
SNAPSHOT_MAX_CHARS = 120_000


def snapshot(values: dict) -> dict:
    """``values`` as a row keeps them (``Row.before``): whole, or the fields that fit in ``SNAPSHOT_MAX_CHARS``
    with the others named under ``"_missing"`` (undo cannot put those back, and says so)."""
    kept: dict = {}
    size = 0
    for name, value in values.items():
        size += len(json.dumps(value, ensure_ascii=False, default=str)) + len(name) + 6
        if size > SNAPSHOT_MAX_CHARS:
            kept.setdefault("_missing", []).append(name)
        else:
            kept[name] = value
    return kept


_PLACE_PARAMS = ("course_key", "course_ref", "index", "module_position", "chapter_position", "lessons", "takeover")


def _from_params(values: dict[str, Any]) -> None:
    """A row stored before ``place`` and ``diff`` were fields kept them in ``params`` (a job in flight during an
    upgrade): move them out. ``params["place"]`` was set while its parent decided the call (``by_parent``)."""
    params = dict(values.get("params") or {})
    values["diff"] = params.pop("diff", None)
    if "course_key" in params:
        by_parent = bool(params.pop("place", None))
        values["place"] = Place(**{k: params.pop(k) for k in _PLACE_PARAMS if k in params}, by_parent=by_parent)
    values["params"] = params
