"""The dry run's diff: per course, what will be created, updated (which fields, old → new), deleted and left
alone, with totals; and the same per row for ``--report``."""

from __future__ import annotations

from collections import Counter, defaultdict

from importer.ingest.plan import Plan
from importer.ingest.problems import shorten
from importer.matching.reconcile import Reconciled
from tasks import operations
from tasks.operations import CHAPTER, COURSE, DELETED, MODULE, UPDATED
from tasks.rows import Row, RowState

REPORT_COLUMNS = ["file", "sheet", "row", "kind", "title", "action", "field", "old", "new", "note"]
_SYMBOL = {"create": "+", "update": "~", "delete": "-", "dead": "!", "invalid": "!", "exists": "=", "unchanged": "="}


def action(row: Row) -> str:
    """create / update / delete / exists / unchanged / dead / invalid / skipped."""
    if row.state is RowState.DEAD:
        return "dead"
    if row.state is RowState.INVALID:
        return "invalid"
    if row.state is RowState.SKIPPED:
        return row.outcome if row.outcome in ("exists", "unchanged") else "skipped"
    verb = operations.get(row.op).verb
    if verb == DELETED:
        return "delete"
    if verb == UPDATED and not row.placed_by_parent:
        return "update"
    return "create"


def _course_of(row: Row) -> str:
    course_key = row.place.course_key if row.place is not None else None
    return str(course_key or (row.key if row.kind == COURSE else row.params.get("course_ref"))
               or "(chapters by id)")


def _label(row: Row) -> str:
    where = f"row {row.row}" if row.row else "not in the file"
    position = ""
    place = row.place
    if place is not None and row.kind == MODULE and place.module_position:
        position = f" {place.module_position}"
    elif place is not None and row.kind == CHAPTER and place.chapter_position:
        position = f" {place.module_position}.{place.chapter_position}"
    return f"{operations.noun(row.kind)}{position} {shorten(row.title, 50)!r} ({where})"


def _note(row: Row) -> str:
    """What a planned row's line adds: its operation's caveat (a call TagMango may not have), if any."""
    return operations.get(row.op).plan_note


def lines(plan: Plan, reconciled: Reconciled) -> list[str]:
    rows = [*plan.rows, *plan.unsent]
    by_course: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_course[_course_of(row)].append(row)
    out = [f"Compared with TagMango ({reconciled.mode} mode, {reconciled.reads} reads):"]
    for course, course_rows in by_course.items():
        counts = Counter(action(r) for r in course_rows)
        summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
        out.append(f"Course {course!r}: {summary}")
        for row in sorted(course_rows, key=lambda r: (r.kind != COURSE, r.row)):
            act = action(row)
            if act in ("exists", "unchanged"):
                continue
            detail = ""
            if act == "update":
                detail = ": " + "; ".join(f"{f} {shorten(old, 40)!r} → {shorten(new, 40)!r}"
                                          for f, (old, new) in (row.diff or {}).items())
            elif act in ("dead", "invalid"):
                error = row.error
                detail = f": {error.label} {error.message}" if error else f": {row.reason}"
            elif note := _note(row):
                detail = f"; {note}"
            out.append(f"  {_SYMBOL.get(act, ' ')} {act} {_label(row)}{detail}")
    for _row, text in reconciled.warnings:
        out.append(f"note: {text}")
    totals: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        totals[row.kind][action(row)] += 1
    text = "; ".join(f"{kind}s: " + ", ".join(f"{n} {act}" for act, n in sorted(acts.items()))
                     for kind, acts in sorted(totals.items(), key=lambda kv: operations.kind_rank(kv[0])))
    out.append(f"Totals: {text or 'nothing'}.")
    return out


def report_rows(plan: Plan) -> list[dict]:
    out = []
    for row in sorted([*plan.rows, *plan.unsent], key=lambda r: (r.file, r.sheet, r.row)):
        base = {"file": row.file, "sheet": row.sheet, "row": row.row or None, "kind": row.kind, "title": row.title,
                "action": action(row)}
        diff = row.diff or {}
        if diff:
            out += [{**base, "field": f, "old": _cell(old), "new": _cell(new)} for f, (old, new) in diff.items()]
        else:
            note = row.error.message if row.error else "; ".join(n for n in (row.reason, _note(row)) if n) or None
            out.append({**base, "note": note})
    return out


def _cell(value: object) -> object:
    return ", ".join(str(v) for v in value) if isinstance(value, list) else value
