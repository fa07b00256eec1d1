"""Matching a plan against TagMango's live catalog, before anything is sent: what exists, what changed, what
to do with each row in the chosen mode.

TagMango is the truth and Redis a cache. Every course row is found in TagMango or not (``courses``: its
identity), its tree's modules and lessons by position (``tree``), its chapter patches by id or course slot; what
each row then becomes is the mode's policy (``modes``). Rows this decides are changed in place: an update instead
of a create (the ids, only the changed fields in the body, ``diff``), or settled before the run (skipped, dead),
and settled rows move to the plan's ``unsent``. Reads only: an empty Update Course, Module or Chapter reads one
object (``live``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from importer.ingest.plan import Plan
from importer.matching.courses import match_course
from importer.matching.live import LiveCatalog
from importer.matching.modes import MODES, mode, settle_course, settle_patch
from importer.matching.tree import TreeMatcher
from tasks import operations
from tasks.ledger import Ledger
from tasks.operations import CHAPTER, COURSE
from tasks.rows import ErrorCode, Row

__all__ = ["MODES", "Reconciled", "reconcile"]


@dataclass
class Reconciled:
    mode: str
    reads: int = 0
    warnings: list[tuple[Row | None, str]] = field(default_factory=list)
    #: Ids of the live courses rows matched: never matched again by another row.
    claimed: set[str] = field(default_factory=set)

    def warn(self, row: Row | None, text: str) -> None:
        self.warnings.append((row, text))


def reconcile(plan: Plan, catalog: LiveCatalog, mode_name: str, ledger: Ledger | None = None, *,
              out: Reconciled | None = None) -> Reconciled:
    """Decide every row of the plan against the live catalog (reads only); move settled rows to ``unsent``.

    ``out``: the outcome of earlier parts of the same import (``Plan.chunks``), carried on: the courses they
    matched stay theirs (``claimed``), their warnings and reads are added to."""
    policy = mode(mode_name)
    out = out or Reconciled(mode_name)
    trees = TreeMatcher(catalog, ledger, policy, plan, out.warn)
    by_course: dict[str, list[Row]] = defaultdict(list)
    for row in plan.rows:
        if row.placed_by_parent:
            by_course[row.place.course_key].append(row)
    courses = {row.row_id: row for row in plan.rows if row.op == operations.create_for(COURSE).name}
    patch = operations.update_for(CHAPTER).name
    # Chapter patches (a chapters sheet), told apart before the trees are settled: a tree's lesson that matching
    # turns into an update is not one.
    patches = [row for row in plan.rows if row.op == patch and not row.placed_by_parent]
    patched = {row.parent for row in patches if row.parent}
    claimed = out.claimed
    live_courses: dict[str, dict | None] = {}  # course row id -> the live course, or None if it does not exist
    if isinstance(ledger, Ledger):  # in Redis: one round trip per 5,000 rows, not one per row
        ledger.read_ahead(row.key for row in courses.values() if not row.ids.get("course_id"))
    for row in courses.values():
        # The whole course is read back only when something needs it: its fields (merge), its modules (a tree),
        # its first/second chapter (patches); create mode on a flat file needs only its id.
        detail = policy.updates or bool(by_course.get(row.key)) or row.row_id in patched
        live = match_course(row, catalog, ledger, claimed, out.warn, detail)
        live_courses[row.row_id] = live
        if live is None:
            if not policy.creates and not row.is_final:
                row.die(ErrorCode.NOT_IN_TAGMANGO, "no such course in TagMango (by key or title under its mangoes); "
                                              "update mode only changes what exists: use --mode merge to create it")
                for child in by_course.get(row.key, []):
                    child.die(ErrorCode.NOT_IN_TAGMANGO, f"its course {row.key!r} is not in TagMango (update mode)")
            continue
        settle_course(row, live, policy)
        trees.settle(row, live, by_course.get(row.key, []))
    for row in patches:
        if not row.is_final:
            settle_patch(row, courses.get(row.parent or ""), live_courses, catalog, ledger)
    out.reads = catalog.reads  # (the catalog counts across parts)
    plan.unsent.extend(r for r in plan.rows if r.is_final)
    plan.rows = [r for r in plan.rows if not r.is_final]
    return out
