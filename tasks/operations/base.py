"""What every TagMango call declares: an ``Operation`` (Create Course, Update Chapter, ...).

It says how to find out that the work is already done (the ledger), which ids it takes from its parent row
(``needs``), how to make the call, how to find what an earlier attempt that may have committed made (for calls
that are not idempotent), and what the results file and the plan say of its rows. Which sheet rows come from is
the sheet side's (``tasks.operations.sheets``).

Generic code (the row runner, release of dependents, requeue, recovery, matching, results) only talks to
operations through this class; adding a TagMango call is one module, its line in ``tasks/operations/__init__.py``,
its method in ``tasks/client.py`` and its endpoint in the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from tasks import errors
from tasks.ledger import content_hash
from tasks.rows import Row, RowFailure

if TYPE_CHECKING:
    from tasks.adopt import Listings
    from tasks.client import TagMangoClient
    from tasks.ledger import Ledger

#: The kinds of object a call touches (``Operation.kind``, ``Row.kind``).
COURSE, MODULE, CHAPTER = "course", "module", "chapter"
#: What the user reads for a kind, where it differs: TagMango's chapters are the file's lessons.
NOUNS = {CHAPTER: "lesson"}
#: What a successful row did (``Operation.verb``): the registry finds an object's create, update or delete by it.
CREATED, UPDATED, DELETED = "created", "updated", "deleted"


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
    #: The kind of object the call touches: COURSE, MODULE, CHAPTER.
    kind: str = ""
    #: The key in the plan summary ("courses_to_create"): the plan counts its rows by operation.
    summary_key: str = ""
    summary_label: str = ""
    #: The ids a row copies from its parent row's result: ``{row id field: parent result field}``; the parent
    #: field may name ``{params}`` of the row.
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

    # -- the report side ---------------------------------------------------------------------
    def outcome(self, row: Row) -> str:
        """What a successful row did, for the results file: created / updated (fields) / deleted."""
        if row.place is not None and row.place.takeover:
            return "created (in a placeholder TagMango made)"
        if self.verb == UPDATED:
            return f"updated ({', '.join(row.diff or row.body) or 'nothing'})"
        return f"{self.verb} (found after its answer was lost)" if row.adopted else self.verb

    def results(self, row: Row) -> dict[str, Any]:
        """This operation's result columns for the row."""
        result = row.result or {}
        return {c: result.get(c) for c in self.result_columns}

    def __repr__(self) -> str:
        return f"<Operation {self.name}>"


def adopt_last_child(ctx: CallContext, read_parent: Callable[[TagMangoClient], dict],
                     read_child: Callable[[TagMangoClient, str], dict], field: str, title: str) -> str | None:
    """The child an earlier attempt of a create may have made, claimed; None if there is none.

    For creates that run one at a time in their parent (a course's modules, a module's chapters): TagMango appends,
    so only the parent's last child (in its ``field``, read with ``read_parent``) can be ours, if no row owns it
    yet and its title (read with ``read_child``) is ``title``.
    """
    children = object_ids(ctx.call(read_parent).get(field))
    if not children or ctx.ledger.is_claimed(children[-1]):
        return None
    last = children[-1]
    child = ctx.call(lambda api: read_child(api, last))
    if str(child.get("title", "")).strip() != title.strip() or not ctx.ledger.claim(last):
        return None
    return last


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
        return row.key if row.placed_by_parent else f"{self.kind}:{row.ids[f'{self.kind}_id']}"

    def check_done(self, ctx: CallContext, row: Row) -> Skip | None:
        if row.placed_by_parent:
            return super().check_done(ctx, row)
        done = ctx.ledger.get(self.ledger_key(row))
        if done is None or done["content"] != content_hash(row.body):
            return None
        return Skip({**row.ids, **done["ids"]}, f"already updated with this content by {done['job']} row {done['row']}")
