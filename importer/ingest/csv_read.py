"""CSV/TSV/TXT into a grid of texts: encoding, delimiter, and which reader splits it.

A file without a quote cannot hold a quoted cell: pandas' C reader splits it. Anything else goes through the
strict reader (``importer.ingest.csv_strict``), which refuses quotes that swallow rows.
"""

from __future__ import annotations

import codecs
import collections
import csv
import io
import re
from collections.abc import Callable

import pandas as pd

from importer.ingest.csv_strict import MAX_CELL_CHARS, Columns, read_strict, text_lines
from importer.ingest.problems import InputError, column_letter

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
    else goes through the strict csv module (``csv_strict.read_strict``).
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
            else:  # the file's own bytes spare encoding the text again, when they are its UTF-8
                utf8 = (data.pop() if isinstance(data, list) else data) if encoding == "utf-8" else None
                plain = _parse_plain(text, delimiter, utf8)
            if plain is not None:
                return plain, True
    old_limit = csv.field_size_limit()
    csv.field_size_limit(MAX_CELL_CHARS)
    try:
        if handed and data:
            del text  # the records are read from the bytes, which are freed as they are read
            lines = io.TextIOWrapper(io.BufferedReader(HandedBytes(data)), encoding=encoding, newline="")
            return read_strict(name, lines, delimiter), True
        if isinstance(data, list):
            data.clear()  # not needed: the strict reader reads the text
        return read_strict(name, text_lines(text), delimiter), True
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
