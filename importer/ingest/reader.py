"""Reading what users drop: CSV/TSV (encoding and delimiter detected) and Excel/ODS (calamine).

Every cell comes out as trimmed text or None, so that ids stay exactly as typed and nothing is guessed as a
number or a date (``importer.ingest.grid``). Hostile input (issue 16) ends in one ``InputError`` line, never a
traceback, a hang or a changed row: only regular files are opened (here); a workbook sheet is measured from its
XML before calamine builds its grid (``workbook``, ``bounds``); CSV quotes are read strictly (``csv_read``).
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from importer.ingest import csv_read, heap
from importer.ingest.grid import Sheet, cell_text, from_grid
from importer.ingest.problems import NO_DATA, InputError, one_line
from importer.ingest.workbook import read_workbook

EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
TEXT_SUFFIXES = {".csv", ".tsv", ".txt"}
#: Bigger files are refused before reading (memory stays within about four times this).
MAX_FILE_BYTES = 256 << 20

__all__ = ["Sheet", "SourceFile", "cell_text", "read_file"]


@dataclass
class SourceFile:
    path: Path
    checksum: str
    sheets: list[Sheet]
    #: (sheet, reason): sheets not read at all, such as hidden ones; shown as warnings.
    warnings: list[tuple[str, str]] = field(default_factory=list)


def read_file(path: str | Path, known: frozenset[str]) -> SourceFile:
    """Read every visible sheet of one file; ``known``: the column names (normalised) that tell a header row.
    Raises InputError with one plain sentence when it cannot."""
    path = Path(path)
    name = path.name
    data = _read_bytes(name, path)
    checksum = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    warnings: list[tuple[str, str]] = []
    try:
        if suffix in EXCEL_SUFFIXES:
            sheets = read_workbook(name, suffix, data, known, warnings)
        elif suffix in TEXT_SUFFIXES:
            content = [data]  # handed over, so that the bytes can be freed as they are parsed (a 1,000,000-row file)
            del data
            sheets = [_read_text(name, path.stem, content, known, tab=suffix == ".tsv",
                                 again=lambda: _read_again(name, path, checksum))]
        else:
            raise InputError(name, f"unsupported file type {suffix or '(none)'}; use .csv, .tsv, .xlsx, .xlsm, .xls "
                                   "or .ods")
    except InputError:
        raise
    except MemoryError:
        raise InputError(name, "too large to read in memory; split it into smaller files") from None
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - readers (and calamine's Rust panics) fail in many ways
        raise InputError(name, f"cannot be read ({type(exc).__name__}: {one_line(exc)})") from None
    return SourceFile(path=path, checksum=checksum, sheets=sheets, warnings=warnings)


def _read_bytes(name: str, path: Path) -> bytes:
    """Only regular files: a folder, a named pipe (which would block), a device or a socket is refused at once."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(name, "file not found") from None
    except OSError as exc:
        raise InputError(name, f"cannot be opened ({exc.strerror or exc})") from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise InputError(name, "is a folder, not a file")
    if stat.S_ISFIFO(mode):
        raise InputError(name, "is a named pipe (FIFO), not a file; save the data to a file first")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise InputError(name, "is a device, not a file")
    if stat.S_ISSOCK(mode):
        raise InputError(name, "is a socket, not a file")
    if not stat.S_ISREG(mode):
        raise InputError(name, "is not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise InputError(name, f"is {st.st_size / 2**20:,.0f} MB; files up to {MAX_FILE_BYTES >> 20} MB are "
                               "read: split it into smaller files")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(name, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(name, f"is larger than {MAX_FILE_BYTES >> 20} MB: split it into smaller files")
    if not data or data.isspace():
        raise InputError(name, "the file is empty")
    return data


def _read_again(name: str, path: Path, checksum: str) -> bytes:
    """The file's bytes once more (the reader freed them as pandas read them, and pandas could not); the same
    bytes, or an InputError."""
    data = _read_bytes(name, path)
    if hashlib.sha256(data).hexdigest() != checksum:
        raise InputError(name, "changed while it was being read; try again once it is saved")
    return data


def _read_text(name: str, stem: str, content: list[bytes], known: frozenset[str], tab: bool,
               again: Callable[[], bytes]) -> Sheet:
    """``content``: the file's bytes, taken out of the list (the caller keeps no reference to them); ``again``:
    reads them once more."""
    data = content.pop()
    text, encoding = csv_read.decode_as(name, data)
    delimiter = "\t" if tab else csv_read.sniff_delimiter(text)
    may_hold_nul = "\x00" in text
    handed, raw = [text], [data]  # handed over: freed as they are read (csv_read.parse)
    del text, data
    grid, shared = csv_read.parse(name, handed, delimiter, raw, again, encoding)
    del raw
    heap.give_back()  # what pandas freed
    sheet = from_grid(name, stem, grid, known, None, is_text=True, may_hold_nul=may_hold_nul, shared=shared)
    del grid
    heap.give_back()  # what the layout freed
    if sheet is None:
        raise InputError(name, NO_DATA)
    return sheet


