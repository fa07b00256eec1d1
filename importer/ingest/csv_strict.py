"""The strict CSV reader (any file with a quote): quotes that swallow rows are refused, saying where.

A quote that is opened and never closed makes every line after it part of one cell. Spreadsheet programs and
pandas accept that silently; here it is an error naming the row (as Excel would number it), the line and the
column where the quote opened. Quotes are read strictly: text after a closing quote (``"x" ,y``) is an error
too, because the lenient reading of it shifts the row's cells one column over without a word.
A cell that spans lines may hold line breaks, but not what looks like whole rows (a quote closed rows later).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator

from importer.ingest.problems import InputError, column_letter, shorten

#: No cell may be longer than this (a file-level refusal; known columns have much lower limits, see limits.py).
MAX_CELL_CHARS = 1 << 20


class Columns(list):
    """Records given column by column (a list of equally long columns): what pandas' reader makes, without
    building a list per row and transposing it back (``grid.from_grid`` reads either)."""


#: Records the strict reader reads at C speed at a time; their lines are kept until they are read.
STRICT_STEP = 1 << 15


def read_strict(name: str, source: Iterable[str], delimiter: str, step: int = STRICT_STEP) -> Columns:
    """The csv module's strict reading of ``source`` (lines with their ends, as ``open(newline='')`` gives them)
    as ``Columns`` of trimmed texts (a shorter record padded with None, as ``grid.from_grid`` pads).

    Records are read ``step`` at a time at C speed, and only that step's lines are kept (a million-row file is
    never held whole beside its cells). A step in which a record spans several lines, or in which the csv module
    refuses a record, is read again from its lines, record by record (``_parse_tracked``): a cell may hold line
    breaks but not what looks like whole rows, and a refusal is said with its row, line and column. Equal texts
    of a column are one object within each step (``_canonical``), as pandas' reader makes them.
    """
    held: list[str] = []

    def lines() -> Iterator[str]:
        for line in source:
            held.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    columns, count, lines_before = Columns(), 0, 0
    widest, width = 0, 0  # widest non-empty record so far; the width multi-line records are checked against
    while True:
        try:
            chunk = list(itertools.islice(reader, step))
        except csv.Error as exc:
            _parse_tracked(name, "".join(held), delimiter, count, lines_before, width, widest)  # says where
            raise InputError(name, f"row {count + 1} (line {lines_before + 1}) or below: cannot be parsed as CSV "
                                   f"({exc})") from None
        if not chunk:
            break
        if reader.line_num - lines_before != len(chunk):  # a record over several lines
            width = _parse_tracked(name, "".join(held), delimiter, count, lines_before, width, widest)[1]
        if not width:
            widest = max(widest, max(map(len, filter(any, chunk)), default=0))
        held.clear()
        lines_before = reader.line_num
        widest_now = max(map(len, chunk))
        columns.extend([None] * count for _ in range(widest_now - len(columns)))
        if min(map(len, chunk)) < len(columns):
            chunk = [r if len(r) == len(columns) else [*r, *[None] * (len(columns) - len(r))] for r in chunk]
        for column, cells in zip(columns, zip(*chunk, strict=True), strict=True):
            column.extend(_canonical(cells))
        count += len(chunk)
        del chunk
    return columns


def _canonical(cells: tuple) -> Iterable[object]:
    """A step's cells of one column, trimmed, equal texts as one object (at C speed)."""
    try:
        trimmed = list(map(str.strip, cells))
    except TypeError:  # a padded record's None
        trimmed = [c.strip() if isinstance(c, str) else c for c in cells]
    canon = dict(zip(trimmed, trimmed, strict=True))
    return map(canon.__getitem__, trimmed)


def text_lines(text: str) -> Iterable[str]:
    """Lines as open(newline='') gives them: a StringIO is quickest, but takes four bytes a character."""
    return io.StringIO(text, newline="") if len(text) <= 32 << 20 else _lines(text)


def _parse_tracked(name: str, text: str, delimiter: str, rows_before: int = 0, lines_before: int = 0,
                   width: int = 0, widest: int = 0) -> tuple[list[list[str]], int]:
    """``text`` (the lines of records that follow ``rows_before`` records on ``lines_before`` lines) read record by
    record: a record over several lines is checked (``_check_multiline``), a refused one is an InputError saying
    where. Returns the records and the width multi-line records are checked against: ``width`` if set already,
    else fixed at the first record over several lines as the widest non-empty record until then (``widest``:
    before ``text``)."""
    reader = csv.reader(text_lines(text), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    append = rows.append
    line = 1
    lines: list[str] | None = None
    try:
        for record in reader:
            append(record)
            end = reader.line_num
            if end != line:
                if lines is None:
                    lines = list(_lines(text))
                if not width:
                    width = max(widest, max((len(r) for r in rows if any(r)), default=0))
                _check_multiline(name, lines[line - 1:end], record, rows_before + len(rows), lines_before + line,
                                 lines_before + end, delimiter, width)
            line = end + 1
    except csv.Error as exc:
        message = str(exc)
        row = rows_before + len(rows) + 1
        local_line, line = line, lines_before + line
        if "field larger than field limit" in message:
            raise InputError(name, f"row {row} (line {line}): a cell longer than {MAX_CELL_CHARS:,} characters; "
                                   "no field may be that long") from None
        first_line = (lines[local_line - 1] if lines is not None and local_line - 1 < len(lines) else
                      _nth_line(text, local_line))
        column = _open_quote_column(first_line, delimiter)
        read_to = lines_before + reader.line_num
        where = f"row {row} (line {line})" + (f", column {column_letter(column)}" if column is not None else "")
        if "unexpected end of data" in message:
            raise InputError(name, f"{where}: a quote opened here is never closed, so every line after it would "
                                   "be read into this one cell; close the quote (a quote inside a cell is written "
                                   "twice: \"\")") from None
        if "expected after" in message and read_to == line:
            raise InputError(name, f"{where}: text after the closing quote of a quoted cell; put the whole cell "
                                   "in quotes, or write a quote inside a cell twice (\"\")") from None
        if "expected after" in message:
            raise InputError(name, f"{where}: a quoted cell runs from line {line} to line {read_to} and "
                                   "ends in a stray quote; a quote is probably not closed, which merges the rows "
                                   "after it into this cell") from None
        raise InputError(name, f"row {row} (line {line}): cannot be parsed as CSV ({message})") from None
    return rows, width


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _lines(text: str):  # noqa: ANN202 - a generator of str
    """The lines of ``text`` with their ends, as open(newline='') gives them, without copying the text into a
    StringIO (whose buffer takes four bytes a character)."""
    for match in _LINE.finditer(text):
        yield match.group()


def _check_multiline(name: str, lines: list[str], record: list[str], row: int, start: int, end: int,
                     delimiter: str, width: int) -> None:
    """A record over several lines (``lines``: its lines, ``start``..``end`` in the file): its cells may hold
    line breaks, not whole rows."""
    raw = "".join(lines)
    try:
        list(csv.reader(io.StringIO(raw, newline=""), delimiter=delimiter, strict=True))
    except csv.Error:
        column = _open_quote_column(lines[0], delimiter)
        where = f"row {row} (line {start})" + (f", column {column_letter(column)}" if column is not None else "")
        raise InputError(name, f"{where}: a quoted cell runs from line {start} to line {end} and ends in a stray "
                               "quote; a quote is probably not closed, which merges the rows after it into this "
                               "cell") from None
    if width < 3:
        return
    for index, cell in enumerate(record):
        if "\n" not in cell and "\r" not in cell:
            continue
        for piece in re.split(r"\r\n|\r|\n", cell)[1:]:
            if piece.count(delimiter) >= width - 1:
                where = f"row {row} (line {start}), column {column_letter(index)}"
                raise InputError(name, f"{where}: a quoted cell runs over "
                                       f"lines {start}–{end} and holds what looks like a whole row "
                                       f"({shorten(piece, 50)!r}); a quote is probably not closed")


def _nth_line(text: str, n: int) -> str:
    for number, line in enumerate(_lines(text), 1):
        if number == n:
            return line
    return ""


def _open_quote_column(line: str, delimiter: str) -> int | None:
    """Index of the field whose quote opens on this line and is still open at its end (first 100,000
    characters of the line)."""
    line = line[:100_000]
    column, in_quote, at_start, opened = 0, False, True, None
    i = 0
    while i < len(line):
        ch = line[i]
        if in_quote:
            if ch == '"':
                if line[i + 1:i + 2] == '"':
                    i += 1
                else:
                    in_quote = False
        elif ch == delimiter:
            column, at_start = column + 1, True
            i += 1
            continue
        elif ch == '"' and at_start:
            in_quote, opened = True, column
        elif ch in "\r\n":
            break
        at_start = False
        i += 1
    return opened

