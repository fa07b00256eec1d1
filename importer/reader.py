"""Reading what users drop: CSV/TSV (encoding and delimiter detected) and Excel/ODS (calamine).

Every cell comes out as trimmed text or None, so that ids stay exactly as typed and
nothing is guessed as a number or a date. A ``Sheet`` remembers each row's number as the
spreadsheet shows it (header = row 1), also after empty rows are dropped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd

from importer.problems import InputError

EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
TEXT_SUFFIXES = {".csv", ".tsv", ".txt"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class Sheet:
    file: str
    name: str
    headers: list[str]
    #: column header -> list of cell texts (None for empty), aligned with ``row_numbers``.
    columns: dict[str, list[str | None]]
    row_numbers: list[int]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.row_numbers)


@dataclass
class SourceFile:
    path: Path
    checksum: str
    sheets: list[Sheet]


def read_file(path: str | Path) -> SourceFile:
    """Read every sheet of one file. Raises InputError with one plain sentence when it cannot."""
    path = Path(path)
    name = path.name
    if not path.exists():
        raise InputError(name, "file not found")
    if path.is_dir():
        raise InputError(name, "is a folder, not a file")
    data = path.read_bytes()
    if not data.strip():
        raise InputError(name, "the file is empty")
    checksum = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        sheets = _read_workbook(name, path, data)
    elif suffix in TEXT_SUFFIXES:
        sheets = [_read_text(name, path.stem, data, tab=suffix == ".tsv")]
    else:
        raise InputError(name, f"unsupported file type {suffix or '(none)'}; use .csv, .tsv, .xlsx, .xlsm, .xls or .ods")
    return SourceFile(path=path, checksum=checksum, sheets=sheets)


def _read_workbook(name: str, path: Path, data: bytes) -> list[Sheet]:
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".xlsm"} and data.startswith(_OLE_MAGIC):
        raise InputError(name, "the workbook is password-protected (encrypted); save an unprotected copy")
    if suffix in {".xlsx", ".xlsm", ".ods"} and not data.startswith(_ZIP_MAGIC):
        raise InputError(name, f"is not a valid {suffix} workbook (wrong content for its extension)")
    try:
        frames = pd.read_excel(io.BytesIO(data), sheet_name=None, header=None, dtype=object, engine="calamine")
    except Exception as exc:  # noqa: BLE001 - calamine raises many types; all mean "unreadable"
        raise InputError(name, f"cannot be read as a workbook ({type(exc).__name__}: {str(exc)[:120]})") from None
    sheets = [_from_grid(name, sheet_name, frame.to_numpy().tolist()) for sheet_name, frame in frames.items()]
    return [s for s in sheets if s is not None] or _no_data(name)


def _read_text(name: str, stem: str, data: bytes, tab: bool) -> Sheet:
    if b"\x00" in data[:4096]:
        raise InputError(name, "is not a text file (binary content); for Excel files use .xlsx")
    text = _decode(data)
    delimiter = "\t" if tab else _sniff_delimiter(text)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, header=None, dtype=str, keep_default_na=False,
                            skip_blank_lines=False, engine="c")
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(name, f"cannot be parsed as CSV ({str(exc).strip()[:160]})") from None
    sheet = _from_grid(name, stem, frame.to_numpy().tolist())
    return sheet if sheet is not None else _no_data(name)[0]


def _no_data(name: str) -> list[Sheet]:
    raise InputError(name, "contains no data (no header row found)")


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), then Windows-1252, then Latin-1 (which always succeeds)."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        return max(",;\t", key=first.count)


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


def _texts(values: tuple) -> list[str | None]:
    """cell_text for a whole column, with a fast path for text cells (every cell of a CSV)."""
    out: list[str | None] = []
    append = out.append
    for v in values:
        if type(v) is str:
            v = v.strip()
            append(v or None)
        else:
            append(cell_text(v))
    return out


def _from_grid(file: str, sheet_name: str, grid: list[list[object]]) -> Sheet | None:
    """Find the header (first non-empty row), drop empty rows/columns, keep spreadsheet row numbers.

    Works column by column (a transpose, then one pass per column): 100,000-row files are the norm.
    """
    if not grid:
        return None
    width = max(len(r) for r in grid)
    padded = (r if len(r) == width else list(r) + [None] * (width - len(r)) for r in grid)
    cols = [_texts(c) for c in zip(*padded, strict=True)]
    nonempty = [any(t) for t in zip(*cols, strict=True)]
    header_index = next((i for i, ne in enumerate(nonempty) if ne), None)
    if header_index is None:
        return None
    header = [c[header_index] for c in cols]
    data_rows = [i for i in range(header_index + 1, len(nonempty)) if nonempty[i]]
    keep = [j for j in range(width) if header[j] is not None or any(cols[j][i] is not None for i in data_rows)]
    headers: list[str] = []
    notes: list[str] = []
    for j in keep:
        h = header[j] if header[j] is not None else f"column {_col_letter(j)}"
        if header[j] is None:
            notes.append(f"a column without header ({_col_letter(j)}) has values; it is carried along as {h!r}")
        while h in headers:
            h = f"{h} (2)"
        headers.append(h)
    columns = {h: [cols[j][i] for i in data_rows] for h, j in zip(headers, keep, strict=True)}
    return Sheet(file=file, name=sheet_name, headers=headers, columns=columns, row_numbers=[i + 1 for i in data_rows],
                 notes=notes)


def _col_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
