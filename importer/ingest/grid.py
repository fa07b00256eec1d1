"""A grid of cells (rows of a CSV or a sheet) into a ``Sheet``: every cell as trimmed text, the header found
(below title rows), empty rows and columns dropped, spreadsheet row numbers kept, and what cannot be read right
refused (a NUL character; in a CSV, a value right of the last header).

Works column by column (a transpose, then one pass per column): 100,000-row files are the norm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time

import pandas as pd

from importer.ingest.columns import normalise_header
from importer.ingest.csv_read import Columns
from importer.ingest.problems import InputError, column_letter, shorten

#: The header is looked for in this many non-empty rows at the top of a sheet.
HEADER_SCAN_ROWS = 20


@dataclass
class Sheet:
    file: str
    name: str
    headers: list[str]
    #: column header -> cell texts (None for empty), aligned with ``row_numbers``; read-only tuples, which the
    #: garbage collector stops walking once it has seen them (a 100,000-row sheet is the norm).
    columns: dict[str, Sequence[str | None]]
    row_numbers: Sequence[int]  # a range when the data rows follow each other (no list of a million ints)
    notes: list[str] = field(default_factory=list)
    #: A repeated header is renamed ``title (column D)``; this maps the new name back to the header as written.
    original: dict[str, str] = field(default_factory=dict)
    #: Where the header was looked for, when no known column name was found (for "cannot tell" messages).
    header_note: str | None = None
    #: Read back from a results file (importer.ingest.results_input): ids the job filled in are output.
    from_results: bool = False

    def __len__(self) -> int:
        return len(self.row_numbers)


def cell_text(value: object) -> str | None:
    """One cell as the text the user typed, where that can be recovered; None when empty."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int) and abs(value) >= 10**15:
        value = float(value)  # calamine hands back integral floats as int; past 15 digits Excel shows 1E+23
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value) if abs(value) < 1e15 else f"{value:.15G}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ") if value.time() != time() else value.date().isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, pd.Timestamp):
        return str(value)
    text = str(value).strip()
    return text or None


def _texts_shared(values: Sequence) -> list[str | None]:
    """cell_text for a column whose equal texts already are one object (as pandas' C reader makes them).

    A column of texts (every column of a CSV) is trimmed at C speed (``map``; ``strip`` hands back the same object
    when there is nothing to trim, so equal texts stay one object)."""
    try:
        trimmed = list(map(str.strip, values))
    except TypeError:  # not every cell is a text
        pass
    else:
        return [t or None for t in trimmed] if "" in trimmed else trimmed
    out: list[str | None] = []
    append = out.append
    for v in values:
        if type(v) is str:
            v = v.strip()
            append(v or None)
        else:
            append(cell_text(v))
    return out


def _texts(values: tuple) -> list[str | None]:
    """cell_text for a whole column, with a fast path for text cells (every cell of a CSV).

    Equal texts come out as one object, and each distinct text is a fresh copy (``join``), so that a column's
    texts lie together in memory. The csv module and calamine make them row by row, scattered between the row
    lists; every later full garbage collection and every cache look-up in the checks then touched scattered
    memory, which made validating a 100,000-row CSV about 30% slower than reading it with pandas (measured).
    """
    out: list[str | None] = []
    append = out.append
    seen: dict[str, str] = {}
    get = seen.get
    join = "".join
    for v in values:
        if type(v) is str:
            v = v.strip()
            if v:
                w = get(v)
                if w is None:
                    w = seen[v] = join((v, ""))
                append(w)
            else:
                append(None)
        else:
            append(cell_text(v))
    return out


def from_grid(file: str, sheet_name: str, grid: list[list[object]], known: frozenset[str],
              numbers: Sequence[int] | None = None, is_text: bool = False, may_hold_nul: bool = True,
              shared: bool = False) -> Sheet | None:
    """Find the header, drop empty rows/columns, keep spreadsheet row numbers.

    ``numbers`` are the spreadsheet numbers of ``grid``'s rows (default 1, 2, ...). The header is the first of
    the top non-empty rows that has a ``known`` column name (normalised, ``columns.normalise_header``; title rows
    above it are skipped, with a note), else the first non-empty row. A grid given as ``Columns`` is consumed.
    """
    texts = _texts_shared if shared else _texts
    if isinstance(grid, Columns):  # already column by column, every column as long
        if not grid or not grid[0]:
            return None
        width = len(grid)
        numbers = range(1, len(grid[0]) + 1) if numbers is None else numbers
        cols = []
        while grid:  # consumed: each of pandas' columns is freed once trimmed (a 1,000,000-row file's peak)
            cols.append(texts(grid.pop(0)))
    else:
        if not grid:
            return None
        if numbers is None:
            numbers = range(1, len(grid) + 1)
        width = max(len(r) for r in grid)
        if width == 0:
            return None
        padded = (r if len(r) == width else list(r) + [None] * (width - len(r)) for r in grid)
        cols = [texts(c) for c in zip(*padded, strict=True)]
    if any(None not in c for c in cols):  # a column without an empty cell: no row is empty (at C speed)
        filled: Sequence[int] = range(len(cols[0]))
    else:
        filled = [i for i, t in enumerate(zip(*cols, strict=True)) if any(t)]
    if not filled:
        return None
    notes: list[str] = []
    header_index, header_note = _find_header(cols, filled, numbers, notes, known)
    header = [c[header_index] for c in cols]
    data_rows = filled[filled.index(header_index) + 1:]  # (filled rises: the rows below the header)
    if is_text and header_note is None:  # (a guessed header proves nothing about the rows' width)
        header_width = 1 + max((j for j in range(width) if header[j] is not None), default=-1)
        _refuse_cells_beyond_header(file, cols, header_width, data_rows, numbers)
    keep = [j for j in range(width) if header[j] is not None or any(cols[j][i] is not None for i in data_rows)]
    headers: list[str] = []
    original: dict[str, str] = {}
    for j in keep:
        if may_hold_nul:
            _refuse_nul(file, sheet_name, cols[j], numbers, j, is_text)
        h = header[j] if header[j] is not None else f"column {column_letter(j)}"
        if header[j] is None:
            notes.append(f"a column without header ({column_letter(j)}) has values; it is carried along as {h!r}")
        elif h in headers:
            first = column_letter(keep[headers.index(h)])
            h = f"{header[j]} (column {column_letter(j)})"
            original[h] = header[j]
            notes.append(f"columns {first} and {column_letter(j)} have the same header {header[j]!r}")
        while h in headers:
            h = f"{h} (2)"
        headers.append(h)
    contiguous = data_rows and data_rows[-1] - data_rows[0] == len(data_rows) - 1  # no empty row among them
    first, end = (data_rows[0], data_rows[-1] + 1) if contiguous else (0, 0)
    columns: dict[str, tuple[str | None, ...]] = {}
    for h, j in zip(headers, keep, strict=True):
        columns[h] = tuple(cols[j][first:end]) if contiguous else tuple([cols[j][i] for i in data_rows])
        cols[j] = []  # freed column by column
    row_numbers = numbers[first:end] if contiguous else [numbers[i] for i in data_rows]
    return Sheet(file=file, name=sheet_name, headers=headers, columns=columns,
                 row_numbers=row_numbers, notes=notes, original=original, header_note=header_note)


def _find_header(cols: list[list[str | None]], filled: Sequence[int], numbers: Sequence[int], notes: list[str],
                 known: frozenset[str]) -> tuple[int, str | None]:
    scanned = filled[:HEADER_SCAN_ROWS]
    for k, i in enumerate(scanned):
        if any(c[i] is not None and normalise_header(c[i]) in known for c in cols):
            if k:
                above = next(c[scanned[0]] for c in cols if c[scanned[0]] is not None)
                first, last = numbers[scanned[0]], numbers[scanned[k - 1]]
                span = f"row {first}" if k == 1 else f"rows {first}–{last}"
                notes.append(f"the header is row {numbers[i]}: {span} above it ({shorten(above, 40)!r}…) skipped")
            return i, None
    span = f"row {numbers[scanned[0]]}" if len(scanned) == 1 else f"rows {numbers[scanned[0]]}–{numbers[scanned[-1]]}"
    return filled[0], (f"the header was looked for in {span} (no known column name there); row "
                       f"{numbers[filled[0]]} was taken as the header")


def _refuse_cells_beyond_header(file: str, cols: list[list[str | None]], header_width: int, data_rows: Sequence[int],
                                numbers: Sequence[int]) -> None:
    """In a CSV, a value right of the last header means a delimiter inside a cell that is not quoted (or a lost
    quote): the row's cells are shifted, so the file is refused rather than read one column off."""
    for j in range(header_width, len(cols)):
        i = next((i for i in data_rows if cols[j][i] is not None), None)
        if i is not None:
            last = column_letter(header_width - 1) if header_width else "none"
            raise InputError(file, f"row {numbers[i]}, column {column_letter(j)}: a value right of the last header "
                                   f"({last}): a cell holding the delimiter without quotes, a lost quote, or a "
                                   f"column without a header? ({shorten(cols[j][i], 40)!r})")


def _refuse_nul(file: str, sheet: str, column: list[str | None], numbers: Sequence[int], j: int, is_text: bool) -> None:
    if "\x00" not in "".join(filter(None, column)):
        return
    i = next(i for i, v in enumerate(column) if v is not None and "\x00" in v)
    where = f"row {numbers[i]}, column {column_letter(j)}" if is_text else \
        f"sheet {sheet!r}, row {numbers[i]}, column {column_letter(j)}"
    raise InputError(file, f"{where}: contains a NUL character (byte 0); the file is damaged or not a spreadsheet "
                           "export, nothing was read")

