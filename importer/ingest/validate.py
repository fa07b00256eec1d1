"""Files in, a ``Plan`` out: every sheet mapped, every row checked, all problems found at once.

Generic over the registry (``tasks.operations``): each sheet is of one sheet kind (by its name, else by its
columns), whose columns, rules and ``draft`` turn every row into a ``Row`` of its operation or into problems (a
curriculum's rows are planned as trees: importer/ingest/tree.py). Rows that name a parent row of this import (a
chapter naming its course) are linked to it last.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from importer.ingest import cellrules, heap, results_input
from importer.ingest.columns import (
    canonical_lookup,
    closest,
    kind_from_headers,
    kind_from_sheet_name,
    known_headers,
    normalise_header,
)
from importer.ingest.deferred import DeferredRows, new_row
from importer.ingest.plan import Plan
from importer.ingest.problems import ERROR, WARNING, Problem, shorten
from importer.ingest.reader import Sheet, read_file
from importer.ingest.records import SheetRow
from importer.ingest.screen import screen
from importer.ingest.tree import plan_tree
from tasks import operations
from tasks.operations import SheetKind
from tasks.rows import Row, RowState


@dataclass
class Options:
    """``--mapping`` (their header -> our column) and ``--set`` (column -> constant)."""

    mapping: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)


def load_mapping(path: str | Path) -> dict[str, str]:
    """Read a YAML or JSON mapping file; raises ValueError with a plain reason."""
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{Path(path).name}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{Path(path).name}: must map each of your headers to one of our column names")
    known = operations.all_columns()
    bad = [v for v in data.values() if v not in known]
    if bad:
        raise ValueError(f"{Path(path).name}: unknown target column {bad[0]!r}; known: {', '.join(sorted(known))}")
    return data


def build_plan(paths: list[str | Path], options: Options | None = None, defer: bool = False) -> Plan:
    """Read, map and validate the files. Raises InputError for a file that cannot be read at all.

    ``defer`` (``validate`` without ``--mode``, ``run``): rows that a sheet kind's columnar check finds plain
    (``SheetKind.plain_keys``) are not built now but deferred (``Plan.deferred``, built by ``Plan.chunks`` when
    sent); the problems and the summary are the same. The garbage collector is paused meanwhile: planning makes
    millions of objects and no cycles, and its full collections cost 40% of the time on 100,000 rows (measured)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_plan(paths, options, defer)
    finally:
        if enabled:
            gc.enable()


def _build_plan(paths: list[str | Path], options: Options | None, defer: bool = False) -> Plan:
    options = options or Options()
    plan = Plan()
    sheets: list[tuple[Sheet, SheetKind]] = []
    for path in paths:
        source = read_file(path, known_headers())
        plan.files.append({"name": source.path.name, "checksum": source.checksum})
        for sheet_name, reason in source.warnings:  # hidden sheets (issue 16)
            plan.problems.append(Problem(source.path.name, sheet_name, None, None, "", WARNING, reason))
        sheets.extend(_classify(results_input.prepare(source.sheets), options, plan))
    used_ids: set[str] = set()
    # Rows that another sheet of this import may look at are built: rows it names as their parent (linking needs
    # them), and every row when a sheet is planned as trees (a curriculum finds its courses among the plan's rows).
    named = {k.parent_op for _, k in sheets}
    defer = defer and not any(k.plans_tree for _, k in sheets)
    for sheet_kind in operations.sheet_kinds():  # registry order: parents before the rows that name them
        deferring = defer and sheet_kind.operation is not None and sheet_kind.operation.name not in named
        for sheet in (s for s, k in sheets if k is sheet_kind):
            _check_sheet(sheet, sheet_kind, options, plan, used_ids, deferring)
    _link_parents(plan)
    heap.give_back()  # what the checks freed (a million rows' keys and their tables)
    if not plan.rows and not plan.unsent and not plan.deferred and not plan.errors:
        for f in plan.files:
            plan.problems.append(Problem(f["name"], "", None, None, "", ERROR, "no data rows to import"))
    _in_row_order(plan.problems)
    return plan


def _in_row_order(problems: list[Problem]) -> None:
    """Problems as the files hold their rows: by file and sheet (in the order first met), then row, a sheet's own
    problems first. (They are found out of order: a repeated key on its earlier row when the later one is read, a
    row naming its parent once every sheet is read.)"""
    places: dict[tuple[str, str], int] = {}
    for p in problems:
        places.setdefault((p.file, p.sheet), len(places))
    problems.sort(key=lambda p: (places[p.file, p.sheet], -1 if p.row is None else p.row))


# -- sheets --------------------------------------------------------------------------------------


def _classify(sheets: list[Sheet], options: Options, plan: Plan) -> list[tuple[Sheet, SheetKind]]:
    named = [(s, kind_from_sheet_name(s.name)) for s in sheets]
    if len(sheets) > 1 and any(k for _, k in named):
        names = " and ".join(repr(k.sheet) for k in operations.sheet_kinds())
        out = []
        for sheet, sheet_kind in named:
            if sheet_kind:
                out.append((sheet, sheet_kind))
            else:
                plan.problems.append(Problem(sheet.file, sheet.name, None, None, "", WARNING,
                                             f"sheet ignored: only sheets named {names} are imported"))
        return out
    out = []
    kinds = operations.sheet_kinds()
    for sheet in sheets:
        sheet_kind = kind_from_headers(sheet.headers, options.mapping)
        if sheet_kind is None and sheet.headers:  # e.g. an export without our columns, given --set mangoes=...
            sheet_kind = next((k for k in kinds if k.markers() & set(options.constants)), None)
        if sheet_kind is None:
            severity = ERROR if len(sheets) == 1 else WARNING
            markers = dict.fromkeys(m.name for k in kinds for m in k.columns if m.marker)
            plan.problems.append(Problem(sheet.file, sheet.name, None, None, "", severity,
                                         f"cannot tell whether this sheet holds {' or '.join(k.sheet for k in kinds)}:"
                                         f" it has none of the columns {', '.join(markers)}"
                                         + (f"; {sheet.header_note}" if sheet.header_note else "")))
            continue
        out.append((sheet, sheet_kind))
    return out


def _map_headers(sheet: Sheet, sheet_kind: SheetKind, options: Options, plan: Plan) -> dict[str, str] | None:
    """header -> the sheet kind's column; unknown headers are warned about and carried along."""
    lookup = canonical_lookup(sheet_kind)
    rules = sheet_kind.rules()
    user = {normalise_header(k): v for k, v in options.mapping.items()}
    mapped: dict[str, str] = {}
    for header in sheet.headers:
        written = sheet.original.get(header, header)  # a repeated header means the same column (issue 16)
        target = user.get(normalise_header(written)) or lookup.get(normalise_header(written))
        if target is not None and target not in rules:
            target = None
        if target is None and sheet.from_results and results_input.is_result_id(header):
            continue  # an id column of another kind of row, filled by the job: output
        if target is None:
            plan.problems.append(Problem(sheet.file, sheet.name, None, None, shorten(header), WARNING,
                                         f"unknown column {header!r}: not sent to TagMango, kept in the results file"))
            continue
        if target in mapped.values():
            other = next(h for h, t in mapped.items() if t == target)
            plan.problems.append(Problem(sheet.file, sheet.name, None, target, shorten(header), ERROR,
                                         f"columns {other!r} and {header!r} both mean {target}; keep one"))
            return None
        mapped[header] = target
    missing = [c for c in sheet_kind.required() if c not in mapped.values() and c not in options.constants]
    for column in missing:
        hint = closest(column, [h for h in sheet.headers if h not in mapped])
        suggestion = f"; did you mean {hint!r}? (use --mapping)" if hint else ""
        plan.problems.append(Problem(sheet.file, sheet.name, None, column, "", ERROR,
                                     f"required column {column!r} is missing{suggestion}"))
    problem = sheet_kind.check_columns(set(mapped.values()) | set(options.constants))
    if problem:
        plan.problems.append(Problem(sheet.file, sheet.name, None, None, "", ERROR, problem))
        return None
    return None if missing else mapped


def _check_sheet(sheet: Sheet, sheet_kind: SheetKind, options: Options, plan: Plan, used_ids: set,
                 defer: bool = False) -> None:
    for note in sheet.notes:
        plan.problems.append(Problem(sheet.file, sheet.name, None, None, "", WARNING, note))
    mapped = _map_headers(sheet, sheet_kind, options, plan)
    if not sheet.row_numbers:
        plan.problems.append(Problem(sheet.file, sheet.name, None, None, "", WARNING,
                                     "the sheet has a header but no data rows"))
    if mapped is None:
        return
    sheet_label = sheet.name if sheet.name not in used_ids else f"{sheet.file}:{sheet.name}"
    used_ids.add(sheet_label)
    plan.headers[sheet_label] = list(sheet.headers)
    plan.sheets.append((sheet.file, sheet.name))
    present = set(mapped.values()) | {c for c in options.constants if c in sheet_kind.rules()}
    cells = cellrules.outcomes(sheet, sheet_kind, mapped, options.constants)
    if sheet_kind.operation is None:
        plan_tree(sheet, sheet_label, list(cellrules.records(cells)), present, plan)
        return
    screened = screen(cells, sheet_kind, present) if defer and not sheet.from_results else None
    if screened is not None:
        drafted, plain_keys = screened
        problems, unsent, rows = len(plan.problems), len(plan.unsent), len(plan.rows)
        sent = _draft_rows(cellrules.records(cells, drafted), sheet, sheet_kind, sheet_label, present, plan)
        if sent:
            skip = set(drafted)
            deferred_keys = (k for i, k in enumerate(plain_keys) if i not in skip)
        if not sent or sent.isdisjoint(deferred_keys):
            part = DeferredRows(cells, sheet_kind, sheet_label, present, frozenset(drafted))
            if len(part):
                plan.deferred.append(part)
        else:
            # A drafted row shares its key with a deferred one (say, an empty external_id whose title key another
            # row gives as its external_id): which one repeats the other depends on their order: draft them all.
            del plan.problems[problems:], plan.unsent[unsent:], plan.rows[rows:]
            screened = None
    if screened is None:
        _draft_rows(cellrules.records(cells), sheet, sheet_kind, sheet_label, present, plan)
    plan.unsent.sort(key=lambda u: (u.sheet, u.row))


def _draft_rows(records: Iterable[SheetRow], sheet: Sheet, sheet_kind: SheetKind, sheet_label: str,
                present: set[str], plan: Plan) -> set[str]:
    """Draft each row into a ``Row`` of the plan, or into problems; repeated keys are told apart. Returns the
    keys of the rows that were not invalid."""
    op = sheet_kind.operation
    seen: dict[str, Row] = {}
    pending: dict[str, Row] = {}
    draft_of, op_name, kind, file, name = sheet_kind.draft, op.name, op.kind, sheet.file, sheet.name
    from_results = sheet.from_results
    for record in records:  # (100,000 rows are the norm: the common path is kept short)
        number, errors = record.number, record.errors
        values = sheet_kind.from_results(record.values) if from_results else record.values
        draft = draft_of(values, present)
        row = new_row(sheet_label, op_name, kind, file, name, record, draft)
        if draft.errors:
            failed_columns = {c for c, _, _ in errors}
            errors.extend(e for e in draft.errors if e[0] not in failed_columns)
        for column, value, reason in draft.warnings:
            plan.problems.append(Problem(file, name, number, column, shorten(value), WARNING, reason))
        if errors:
            for column, value, reason in errors:
                plan.problems.append(Problem(file, name, number, column, shorten(value), ERROR, reason))
            _unsend(row, RowState.INVALID, "; ".join(f"{c}: {r}" if c else r for c, _, r in errors))
            plan.unsent.append(row)
        elif row.key not in seen:
            seen[row.key] = pending[row.row_id] = row
        else:
            _add_unique(sheet_kind, row, seen, pending, plan, sheet)
    for row in pending.values():
        (plan.unsent if row.is_final else plan.rows).append(row)
    return set(seen)


def _unsend(row: Row, state: RowState, reason: str) -> None:
    row.state, row.reason = state, reason


def _add_unique(sheet_kind: SheetKind, row: Row, seen: dict[str, Row], pending: dict[str, Row], plan: Plan,
                sheet: Sheet) -> None:
    """Repeats with the same content are imported once; same key with other content is an error on both."""
    first = seen.get(row.key)
    if first is None:
        seen[row.key] = row
        pending[row.row_id] = row
        return
    if first.body == row.body:
        plan.problems.append(Problem(sheet.file, sheet.name, row.row, None, shorten(row.title), WARNING,
                                     f"repeats row {first.row} exactly; imported once"))
        _unsend(row, RowState.SKIPPED, f"repeat of row {first.row}")
        pending[row.row_id] = row
        return
    column = sheet_kind.key_column(row)
    shown = shorten(row.key.removeprefix("title:"))
    reason = f"same {column} as row {{other}} but different content; make the key unique or remove one"
    plan.problems.append(Problem(sheet.file, sheet.name, row.row, column, shown, ERROR, reason.format(other=first.row)))
    plan.problems.append(Problem(sheet.file, sheet.name, first.row, column, shown, ERROR, reason.format(other=row.row)))
    for one, other in ((row, first), (first, row)):
        _unsend(one, RowState.INVALID, f"duplicate key: conflicts with row {other.row}")
        pending[one.row_id] = one


# -- parents -------------------------------------------------------------------------------------


def _link_parents(plan: Plan) -> None:
    """Point rows that name a parent (a chapter's course_ref) at that row of this import, by key or title.

    A parent that is invalid makes the row invalid; a parent that is not in this import must come from an
    earlier import to the same host, which the worker checks when the row runs.
    """
    kinds = {op: operations.sheet_for(op) for op in {row.op for row in plan.rows}}
    if not any(k is not None and k.parent_op for k in kinds.values()):  # no row can name a parent (a flat sheet)
        plan.unsent.sort(key=lambda u: (u.sheet, u.row))
        return
    by_op: dict[str, dict[str, Row]] = {}
    invalid_by_op: dict[str, dict[str, Row]] = {}
    for row in plan.rows:
        by_op.setdefault(row.op, {})[row.key] = row
    for row in plan.unsent:
        if row.state is RowState.INVALID:
            invalid_by_op.setdefault(row.op, {})[row.key] = row
    keep = []
    for row in plan.rows:
        sheet_kind = kinds[row.op]
        ref = sheet_kind.parent_key(row) if sheet_kind is not None and sheet_kind.parent_op else None
        if not ref:
            keep.append(row)
            continue
        parent = sheet_kind.find_parent(row, by_op.get(sheet_kind.parent_op, {}))
        if parent is not None:
            sheet_kind.link(row, parent)
            keep.append(row)
            continue
        bad = sheet_kind.find_parent(row, invalid_by_op.get(sheet_kind.parent_op, {}))
        column = sheet_kind.parent_column
        parent_kind = operations.get(sheet_kind.parent_op).kind
        if bad is not None:
            reason = f"refers to {parent_kind} {ref!r} on row {bad.row}, which is invalid"
            plan.problems.append(Problem(row.file, row.sheet, row.row, column, shorten(ref), ERROR, reason))
            _unsend(row, RowState.INVALID, f"{column}: {reason}")
            plan.unsent.append(row)
            continue
        plan.problems.append(Problem(row.file, row.sheet, row.row, column, shorten(ref), WARNING,
                                     f"not a {parent_kind} in this import; it must have been "
                                     "created by an earlier import to the same host (checked when the import runs)"))
        keep.append(row)
    plan.rows = keep
    plan.unsent.sort(key=lambda u: (u.sheet, u.row))
