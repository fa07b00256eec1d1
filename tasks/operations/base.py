"""What every TagMango operation declares, on both sides of the queue.

An ``Operation`` is one TagMango call (Create Course, Update Chapter, ...). On the **sheet side** it says
which sheet and columns it reads, with each column's rule, and turns one row's values into a ``Draft``: the
request body, the idempotency key, the parameters the call needs, and what is wrong with the row. On the
**worker side** it says how to find out that the work is already done (the ledger), which ids it takes from
its parent row (``needs``), how to make the call, how to find what an earlier attempt that may have
committed made (for calls that are not idempotent), and which result columns it fills.

Generic code (validation, the row runner, release of dependents, requeue, recovery, results) only talks to
operations through this class; adding a TagMango call is one module plus its line in
``tasks/operations/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from tasks import errors
from tasks.ledger import content_hash
from tasks.operations import cells
from tasks.rows import Row, RowFailure

if TYPE_CHECKING:
    from tasks.adopt import Listings
    from tasks.client import TagMangoClient
    from tasks.ledger import Ledger

T = TypeVar("T")
Rule = Callable[[str], Any]

#: The kinds of object a call touches (``Operation.kind``, ``Row.kind``).
COURSE, MODULE, CHAPTER = "course", "module", "chapter"
#: What the user reads for a kind, where it differs: TagMango's chapters are the file's lessons.
NOUNS = {CHAPTER: "lesson"}
#: What a successful row did (``Operation.verb``): the registry finds an object's create, update or delete by it.
CREATED, UPDATED, DELETED = "created", "updated", "deleted"


@dataclass(frozen=True)
class Column:
    name: str
    rule: Rule = cells.text
    #: The sheet must have this column (or a ``--set`` value for it).
    required: bool = False
    #: Its presence tells that a sheet holds rows of this operation.
    marker: bool = False


@dataclass
class Draft:
    """What an operation makes of one spreadsheet row."""

    key: str
    title: str
    body: dict
    params: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)
    #: (column or None, shown value, reason)
    errors: list[tuple[str | None, str, str]] = field(default_factory=list)
    warnings: list[tuple[str | None, str, str]] = field(default_factory=list)


class Skip(NamedTuple):
    """The row ends skipped: its work is already done (the ids it produced, and why we know), or, answered by a
    call, it cannot be done and is not a failure (the reason says why; ``outcome`` what became of the object)."""

    result: dict
    reason: str
    outcome: str = "skipped (already done)"


class MissingParentId(Exception):
    """The parent row finished without the id this row needs; the text says which."""


def same_value(new: Any, old: Any) -> bool:
    """A value of the file and TagMango's are the same: text trimmed, lists item by item as text, and None, "", []
    and False all mean "nothing set"."""
    if isinstance(new, str) or isinstance(old, str):
        return str(new or "").strip() == str(old or "").strip()
    if isinstance(new, list) and isinstance(old, list):
        return [str(x) for x in new] == [str(x) for x in old]
    return new == old or (not new and not old)


def object_ids(value: Any) -> list[str]:
    """A list of ids as TagMango answers it (strings, or objects with ``_id``/``id``), as strings."""
    out = []
    for item in value or []:
        item = item.get("_id") or item.get("id") if isinstance(item, dict) else item
        if item:
            out.append(str(item))
    return out


@dataclass
class CallContext:
    """What a worker hands an operation for one row: TagMango, the ledger, and shared Get Courses scans."""

    job_id: str
    #: Makes one request, ``call(lambda api: api.create_course(body))``, through the credential's door
    #: (``tasks.gateway``): under the rate limiter, counted for the job. The only way an operation reaches TagMango.
    call: Callable[[Callable[[TagMangoClient], Any]], Any]
    ledger: Ledger
    #: Get Courses scans shared between rows (tasks.adopt).
    listings: Listings | None = None


class Operation:
    #: The name rows carry (``Row.op``) and the registry knows.
    name: str = ""
    #: The Celery task that runs such rows (its name shows in Flower).
    task_name: str = ""
    #: The kind of object the call touches: course, module, chapter.
    kind: str = ""
    #: The sheet it reads (``None``: rows are derived, not read), the sheet names that mean it, and its columns.
    sheet: str | None = None
    sheet_names: tuple[str, ...] = ()
    columns: tuple[Column, ...] = ()
    #: When a sheet is classified by its columns, higher goes first (markers of more specific operations).
    classify_priority: int = 0
    #: The sheet's rows are a tree planned as a whole (importer/ingest/tree.py), not one call per row.
    plans_tree: bool = False
    #: The key in the plan summary ("courses_to_create").
    summary_key: str = ""
    summary_label: str = ""
    #: The operation of the parent row this one may wait for, and the ids it copies from the parent's result:
    #: ``{row id field: parent result field}``; the parent field may name ``{params}`` of the row.
    parent_op: str | None = None
    #: The column in which a row names its parent's key.
    parent_column: str | None = None
    needs: dict[str, str] = {}
    #: Columns this operation fills in the results file.
    result_columns: tuple[str, ...] = ()
    #: Not idempotent: the row is marked before the request leaves, and a later attempt looks first.
    creates: bool = False
    #: Rows of this operation may have rows waiting for them.
    can_be_parent: bool = True
    #: What the results file says a successful row did (CREATED, UPDATED, DELETED).
    verb: str = CREATED
    #: What the dry run adds to a planned row's line: a caveat of the call (e.g. one TagMango may not have).
    plan_note: str = ""
    #: Its objects are listed by Get Courses (a course): a second copy made by another import can be found.
    listed: bool = False

    # -- the sheet side ----------------------------------------------------------------------
    def rules(self) -> dict[str, Rule]:
        return {c.name: c.rule for c in self.columns}

    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def markers(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.marker)

    def check_columns(self, present: set[str]) -> str | None:
        """A sheet-level problem with the set of columns (beyond required ones), or None."""
        return None

    def draft(self, values: dict[str, Any], present: set[str]) -> Draft:
        raise NotImplementedError

    def key_column(self, row: Row) -> str:
        """The column a duplicate key is reported on."""
        return "key"

    def parent_key(self, row: Row) -> str | None:
        """The key of the row (of ``parent_op``) this row names as its parent, if it names one."""
        return row.params.get(self.parent_column) if self.parent_column else None

    def find_parent(self, row: Row, candidates: dict[str, Row]) -> Row | None:
        """The parent among rows of ``parent_op`` by key."""
        key = self.parent_key(row)
        return candidates.get(key) if key else None

    def link(self, row: Row, parent: Row) -> None:
        """Make ``row`` wait for ``parent`` (a row of this import)."""
        row.parent = parent.row_id

    # -- the worker side ---------------------------------------------------------------------
    def take_from_parent(self, row: Row, parent_result: dict) -> None:
        """Copy what the row needs from its parent's finished result (raises MissingParentId)."""
        row.ids.update(self.ids_from_parent(row, parent_result))

    def ids_from_parent(self, row: Row, parent_result: dict) -> dict:
        """The ids this row copies from its parent's result, as ``needs`` declares."""
        ids = {}
        for field_name, source in self.needs.items():
            name = source.format(**row.params)
            value = parent_result.get(name)
            if not value:
                raise MissingParentId(f"its parent row finished without a {name.replace('_', ' ')} id")
            ids[field_name] = value
        return ids

    def ledger_key(self, row: Row) -> str:
        """Where the ledger remembers this row's work (its key: a course's key, a position in a tree)."""
        return row.key

    def check_done(self, ctx: CallContext, row: Row) -> Skip | None:
        """Already done (the ledger says so): skip the call."""
        done = ctx.ledger.get(self.ledger_key(row))
        if done is None:
            return None
        return Skip(done["ids"], f"already done by {done['job']} row {done['row']}")

    def resolve(self, ctx: CallContext, row: Row) -> RowFailure | None:
        """Fill ids that need a lookup before the call; a failure dead-letters the row without a request."""
        return None

    def call(self, ctx: CallContext, row: Row) -> dict | Skip:
        """Make the call (through ``ctx.call``); return the ids for the row's result, or a ``Skip`` when TagMango's
        answer says the work cannot be done and that is no failure (the row ends skipped, saying why)."""
        raise NotImplementedError

    def find_committed(self, ctx: CallContext, row: Row) -> dict | None:
        """For ``creates``: what an earlier attempt of this row made, claimed for it; None if nothing."""
        return None

    def record(self, ctx: CallContext, row: Row, result: dict) -> None:
        """Remember the work in the ledger, so a re-run skips it."""
        ctx.ledger.record(self.ledger_key(row), result, row.body, ctx.job_id, row.row_id)

    @staticmethod
    def id_of(answer: dict, what: str) -> str:
        """The ``_id`` of a created object; an answer without one may still have created it (retry, look first)."""
        value = answer.get("_id") or answer.get("id")
        if not value:
            raise errors.ServerError(f"{what} answered without an id", status=200, maybe_committed=True)
        return str(value)

    def request_path(self, row: Row) -> str:
        raise NotImplementedError

    def outcome(self, row: Row) -> str:
        """What a successful row did, for the results file: created / updated (fields) / deleted."""
        if row.params.get("takeover"):
            return "created (in a placeholder TagMango made)"
        if self.verb == UPDATED:
            return f"updated ({', '.join(row.params.get('diff') or row.body) or 'nothing'})"
        return f"{self.verb} (found after its answer was lost)" if row.adopted else self.verb

    def results(self, row: Row) -> dict[str, Any]:
        """This operation's result columns for the row."""
        result = row.result or {}
        return {c: result.get(c) for c in self.result_columns}

    def __repr__(self) -> str:
        return f"<Operation {self.name}>"


class PartialUpdate(Operation):
    """An update of an object by its id (Update Course/Module/Chapter): idempotent, so the ledger skips it only
    when this very content was sent to this object before. A row that fills a place in a tree (a placeholder
    taken over) is remembered by its position instead, like the creates.

    Matching (importer/matching) asks it what changed: ``changes(body, live)`` compares the ``compared_fields`` a
    row's body has with the live object by ``same_value``, and ``changed_body`` is what is then sent."""

    verb = UPDATED
    #: The body's fields compared with the live object (API names); a field the body lacks is never compared.
    compared_fields: tuple[str, ...] = ()

    def changes(self, body: dict, live: dict) -> dict[str, list]:
        """Fields of ``body`` whose value differs from the live object's: ``{field: [old, new]}``."""
        return {f: [live.get(f), body[f]] for f in self.compared_fields
                if f in body and not same_value(body[f], live.get(f))}

    @staticmethod
    def changed_body(body: dict, diff: dict[str, list]) -> dict:
        """The part of ``body`` that changed, as the partial update to send (``a.b`` goes inside ``a``)."""
        out: dict = {}
        for name in diff:
            outer, _, inner = name.partition(".")
            if inner:
                out.setdefault(outer, {})[inner] = diff[name][1]
            else:
                out[name] = body[name]
        return out

    def ledger_key(self, row: Row) -> str:
        return row.key if row.params.get("place") else f"{self.kind}:{row.ids[f'{self.kind}_id']}"

    def check_done(self, ctx: CallContext, row: Row) -> Skip | None:
        if row.params.get("place"):
            return super().check_done(ctx, row)
        done = ctx.ledger.get(self.ledger_key(row))
        if done is None or done["content"] != content_hash(row.body):
            return None
        return Skip({**row.ids, **done["ids"]}, f"already updated with this content by {done['job']} row {done['row']}")
