"""CSV/TSV/TXT into a grid of texts: encoding, delimiter, and quotes that swallow rows.

A quote that is opened and never closed makes every line after it part of one cell. Spreadsheet programs and
pandas accept that silently; here it is an error naming the row (as Excel would number it), the line and the
column where the quote opened. Quotes are read strictly: text after a closing quote (``"x" ,y``) is an error
too, because the lenient reading of it shifts the row's cells one column over without a word.
A cell that spans lines may hold line breaks, but not what looks like whole rows (a quote closed rows later).
"""

from __future__ import annotations

import codecs
import collections
import csv
import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator

import pandas as pd

from importer.ingest.problems import InputError, column_letter, shorten

#: No cell may be longer than this (a file-level refusal; known columns have much lower limits, see limits.py).
MAX_CELL_CHARS = 1 << 20
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode(name: str, data: bytes) -> str:
    """UTF-8/16/32 by byte-order mark; else UTF-8, then Windows-1252, then Latin-1 (which always succeeds)."""
    return decode_as(name, data)[0]


def decode_as(name: str, data: bytes) -> tuple[str, str]:
    """``decode``, and the encoding it took ("utf-8" only for UTF-8 without a byte-order mark: then ``data`` is
    the text's own UTF-8, which pandas can read as it is)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise InputError(name, f"starts with a {encoding.upper()} byte-order mark but is not valid "
                                       f"{encoding.upper()} text (at byte {exc.start:,})") from None
    head = data[:4096]
    if b"\x00" in head:
        if _looks_utf16(head):
            raise InputError(name, "looks like UTF-16 text without a byte-order mark; save it as 'CSV UTF-8' "
                                   "(or 'Unicode Text', which has one)")
        raise InputError(name, "is not a text file (binary content); for Excel files use .xlsx")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if _UTF8_SEQUENCE.search(data):
            # Real UTF-8 text with a damaged byte: reading it all as Windows-1252 would garble every accent.
            line = data.count(b"\n", 0, exc.start) + 1
            start = data.rfind(b"\n", 0, exc.start) + 1
            first = data[:data.find(b"\n")] if b"\n" in data else data
            delimiter = max((b",", b";", b"\t"), key=first.count)
            column = data.count(delimiter, start, exc.start)
            raise InputError(name, f"line {line}, column {column_letter(column)}: byte 0x{data[exc.start]:02X} is not "
                                   "UTF-8, though the rest of the file is; the file is damaged or mixes encodings "
                                   "(save it again as 'CSV UTF-8')") from None
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


#: A multi-byte UTF-8 sequence (an accented letter, a curly quote...): the file is UTF-8, not Windows-1252.
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _looks_utf16(head: bytes) -> bool:
    even, odd = head[0::2], head[1::2]
    zeros = sorted((even.count(0), odd.count(0)))
    return zeros[1] > 0.3 * len(head) / 2 and zeros[0] < 0.05 * len(head)


def sniff_delimiter(text: str) -> str:
    lines = text[:200_000].splitlines()[:50]
    sample = "\n".join(lines)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        first = next((line for line in lines if line.strip()), "")
        return max(",;\t", key=first.count)


def parse(name: str, text: str | list[str], delimiter: str, data: bytes | list[bytes] | None = None,
          again: Callable[[], bytes] | None = None, encoding: str = "utf-8") -> tuple[list[list[object]], bool]:
    """Records, one per spreadsheet row (a blank line is an empty row), and whether equal texts in them are
    already one object; the records are given as columns (``Columns``, every column as long). ``data``: the
    file's bytes, ``text`` decoded with ``encoding``, if at hand; UTF-8 bytes spare encoding the text again for
    pandas. Raises InputError.

    Handed over (``text`` and ``data`` each in a list the caller keeps no other reference to, and ``again`` to
    read the bytes once more), the text is freed before the records are read, and the bytes piece by piece as
    they are read (``HandedBytes``): a 1,000,000-row file's read peaks at its cells, without the file beside
    them (issue 23). Should pandas not read it (a row with more fields than the first), ``again`` gives the bytes
    back for the strict reader.

    Text without a quote (or NUL) cannot hold a quoted cell, so it is split by pandas' C reader: a column's texts
    then come out together in memory, and equal texts as one object (faster checks on large files). Anything
    else goes through the strict csv module (``_read_strict``).
    """
    handed = isinstance(text, list) and isinstance(data, list) and again is not None
    text = text.pop() if isinstance(text, list) else text
    if '"' not in text:
        at = _too_long_cell(text, delimiter)
        if at is not None:
            line = text.count("\n", 0, at) + 1
            raise InputError(name, f"row {line} (line {line}): a cell longer than {MAX_CELL_CHARS:,} characters; "
                                   "no field may be that long")
        if "\x00" not in text:
            if handed and encoding == "utf-8":
                del text  # (and the bytes, as pandas reads them)
                plain = _parse_plain(None, delimiter, HandedBytes(data))
                text = again().decode("utf-8") if plain is None else ""
                handed = False  # the bytes are gone: the strict reader reads the text
            else:
                utf8 = data if encoding == "utf-8" else None
                plain = _parse_plain(text, delimiter, utf8.pop() if isinstance(utf8, list) else utf8)
            if plain is not None:
                return plain, True
    old_limit = csv.field_size_limit()
    csv.field_size_limit(MAX_CELL_CHARS)
    try:
        if handed and data:
            del text  # the records are read from the bytes, which are freed as they are read
            lines = io.TextIOWrapper(io.BufferedReader(HandedBytes(data)), encoding=encoding, newline="")
            return _read_strict(name, lines, delimiter), True
        if isinstance(data, list):
            data.clear()  # not needed: the strict reader reads the text
        return _read_strict(name, _source(text), delimiter), True
    finally:
        csv.field_size_limit(old_limit)


def _too_long_cell(text: str, delimiter: str) -> int | None:
    """Where a cell longer than MAX_CELL_CHARS starts in quote-free text, else None. Looks only at lines longer
    than that: each step jumps to the last line break within the next MAX_CELL_CHARS characters."""
    pos, size = 0, len(text)
    while size - pos > MAX_CELL_CHARS:
        end = pos + MAX_CELL_CHARS + 1
        brk = max(text.rfind("\n", pos, end), text.rfind("\r", pos, end))
        if brk >= 0:
            pos = brk + 1
            continue
        stop = min(i for i in (text.find("\n", end), text.find("\r", end), size) if i >= 0)
        start = pos
        while start <= stop:
            cut = text.find(delimiter, start, stop)
            cut = stop if cut < 0 else cut
            if cut - start > MAX_CELL_CHARS:
                return start
            start = cut + 1
        pos = stop + 1
    return None


class Columns(list):
    """Records given column by column (a list of equally long columns): what pandas' reader makes, without
    building a list per row and transposing it back (``grid.from_grid`` reads either)."""


class HandedBytes(io.RawIOBase):
    """A file's bytes, handed over in a list, read once from the front: each megabyte is freed once read. (The
    pieces are copied from the bytes first: twice the file for a moment, before pandas has made any cell.)"""

    PIECE = 1 << 20

    def __init__(self, handed: list[bytes]) -> None:
        super().__init__()
        data = handed.pop()
        view = memoryview(data)
        self._pieces = collections.deque(bytes(view[i:i + self.PIECE]) for i in range(0, len(data), self.PIECE))
        view.release()
        self._piece, self._at = memoryview(b""), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._at >= len(self._piece):
            if not self._pieces:
                return 0
            self._piece, self._at = memoryview(self._pieces.popleft()), 0
        n = min(len(buffer), len(self._piece) - self._at)
        buffer[:n] = self._piece[self._at:self._at + n]
        self._at += n
        return n


def _parse_plain(text: str | None, delimiter: str, utf8: bytes | HandedBytes | None = None) -> Columns | None:
    """pandas' C reader; None when a row has more fields than the first (then the csv module reads it)."""
    # As UTF-8 bytes: a StringIO of the text takes four bytes a character (the read's peak memory); the file's own
    # bytes when they are its UTF-8 (a BytesIO shares them: no copy; ``HandedBytes`` frees them as read). pandas
    # drops a byte-order mark at the start of bytes, so text that starts with one (kept as a character) stays text.
    if text is not None and text.startswith("\ufeff"):
        source: io.IOBase = io.StringIO(text)
    elif isinstance(utf8, HandedBytes):
        source = io.BufferedReader(utf8)
    else:
        source = io.BytesIO(text.encode("utf-8", "surrogatepass") if utf8 is None else utf8)
    try:
        frame = pd.read_csv(source, sep=delimiter, header=None, dtype=str, keep_default_na=False, encoding="utf-8",
                            na_filter=False, skip_blank_lines=False, engine="c", quoting=csv.QUOTE_NONE)
    except (pd.errors.ParserError, ValueError):
        return None
    return Columns(frame[c].tolist() for c in frame.columns)


#: Records the strict reader reads at C speed at a time; their lines are kept until they are read.
STRICT_STEP = 1 << 15


def _read_strict(name: str, source: Iterable[str], delimiter: str, step: int = STRICT_STEP) -> Columns:
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


def _source(text: str):  # noqa: ANN202 - an iterable of lines
    """Lines as open(newline='') gives them: a StringIO is quickest, but takes four bytes a character."""
    return io.StringIO(text, newline="") if len(text) <= 32 << 20 else _lines(text)


def _parse_tracked(name: str, text: str, delimiter: str, rows_before: int = 0, lines_before: int = 0,
                   width: int = 0, widest: int = 0) -> tuple[list[list[str]], int]:
    """``text`` (the lines of records that follow ``rows_before`` records on ``lines_before`` lines) read record by
    record: a record over several lines is checked (``_check_multiline``), a refused one is an InputError saying
    where. Returns the records and the width multi-line records are checked against: ``width`` if set already,
    else fixed at the first record over several lines as the widest non-empty record until then (``widest``:
    before ``text``)."""
    reader = csv.reader(_source(text), delimiter=delimiter, strict=True)
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

