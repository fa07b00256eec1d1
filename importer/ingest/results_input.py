"""A results file (or a ``report``, or an ``export``) read back as input (issue 21, 22).

The results file is the input's own columns followed by what happened (``status``, ``outcome``, the ids, the
error, ``sheet`` and ``row``, the ``before`` snapshot). Read back, those columns are output, not input:

* a sheet whose headers hold ``status``, ``sheet`` and ``row`` is a results sheet; its output-only columns are
  dropped silently (no "unknown column" warnings);
* a results CSV holds every sheet of the job in one table: its rows are split by the ``sheet`` column into one
  sheet each (``courses``, ``chapters``, ``curriculum``), and each row keeps the row number of its ``row``
  column, so that messages and ``requeue --from`` name the row of the original input;
* an export's read-only columns (``tagmango_course_isPublished``...) are dropped silently too;
* ids the job filled in beside the row's own reference (a chapter found by ``course_ref`` + ``chapter_slot``
  gets its ``chapter_id``) are output too: the sheet kind says which (``SheetKind.from_results``).
"""

from __future__ import annotations

from importer.ingest.columns import normalise_header
from importer.ingest.grid import Sheet
from tasks import operations

#: Columns only the results file has (never read as input).
STATUS_COLUMNS = ("status", "outcome", "before", "http_status", "error_code", "error_message", "attempts",
                  "finished_at", "sheet", "row")
_MARKS = {"status", "sheet", "row"}
#: The export's read-only columns (importer.matching.export.READ_ONLY_PREFIX), normalised.
READ_ONLY = "tagmango"


def output_only() -> frozenset[str]:
    """Normalised names of the columns a results file adds that no sheet reads."""
    names = set(STATUS_COLUMNS) | (set(operations.result_columns()) - operations.all_columns())
    return frozenset(normalise_header(n) for n in names)


def is_result_id(header: str) -> bool:
    """An id column the results file fills for every kind of row (a course's ``chapter_id`` is empty output)."""
    return normalise_header(header) in {normalise_header(c) for c in operations.result_columns()}


def is_results_sheet(sheet: Sheet) -> bool:
    return {normalise_header(h) for h in sheet.headers} >= _MARKS


def prepare(sheets: list[Sheet]) -> list[Sheet]:
    """The sheets as input: results sheets split by their ``sheet`` column and stripped of output columns."""
    out: list[Sheet] = []
    for sheet in sheets:
        sheet = _without_read_only(sheet)
        if not is_results_sheet(sheet):
            out.append(sheet)
            continue
        out.extend(_strip(part) for part in _split(sheet))
    return out


def _header(sheet: Sheet, name: str) -> str | None:
    return next((h for h in sheet.headers if normalise_header(h) == name), None)


def _split(sheet: Sheet) -> list[Sheet]:
    sheet_col, row_col = _header(sheet, "sheet"), _header(sheet, "row")
    names = sheet.columns[sheet_col] if sheet_col else [None] * len(sheet)
    numbers = sheet.columns[row_col] if row_col else [None] * len(sheet)
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(name or sheet.name, []).append(index)
    if len(groups) <= 1:
        return [sheet]
    parts = []
    for name, indexes in groups.items():
        rows = []
        for i in indexes:
            text = numbers[i]
            rows.append(int(text) if text and str(text).isdigit() else sheet.row_numbers[i])
        if len(set(rows)) != len(rows):  # two files' sheets of the same name: keep this file's row numbers
            rows = [sheet.row_numbers[i] for i in indexes]
        columns = {h: tuple(col[i] for i in indexes) for h, col in sheet.columns.items()}
        columns = {h: col for h, col in columns.items() if any(c is not None for c in col)}  # other sheets' columns
        parts.append(Sheet(file=sheet.file, name=name, headers=[h for h in sheet.headers if h in columns],
                           columns=columns,
                           row_numbers=rows, notes=list(sheet.notes), original=dict(sheet.original),
                           from_results=True))
    return parts


def _without_read_only(sheet: Sheet) -> Sheet:
    """An export's read-only columns (``tagmango_<object>_<field>``: what TagMango returns and no column imports)
    are dropped silently."""
    keep = [h for h in sheet.headers if not normalise_header(h).startswith(READ_ONLY)]
    if len(keep) == len(sheet.headers):
        return sheet
    return Sheet(file=sheet.file, name=sheet.name, headers=keep, columns={h: sheet.columns[h] for h in keep},
                 row_numbers=sheet.row_numbers, notes=sheet.notes, original=sheet.original,
                 header_note=sheet.header_note, from_results=sheet.from_results)


def _strip(sheet: Sheet) -> Sheet:
    drop = output_only()
    keep = [h for h in sheet.headers if normalise_header(h) not in drop]
    return Sheet(file=sheet.file, name=sheet.name, headers=keep, columns={h: sheet.columns[h] for h in keep},
                 row_numbers=sheet.row_numbers, notes=sheet.notes, original=sheet.original,
                 header_note=sheet.header_note, from_results=True)
