"""Reading what users drop: CSV/TSV (encoding and delimiter detected) and Excel/ODS (calamine).

Every cell comes out as trimmed text or None, so that ids stay exactly as typed and
nothing is guessed as a number or a date. A ``Sheet`` remembers each row's number as the
spreadsheet shows it (header = row 1), also after empty rows are dropped.

Hostile input (issue 16) ends in one ``InputError`` line, never a traceback, a hang or a changed row: only
regular files are opened; a workbook sheet is measured from its XML before calamine builds its grid
(``xlsx_bounds``); hidden sheets are skipped and reported; CSV quotes are read strictly (``csv_read``); a NUL
anywhere, or a CSV value right of the last header, refuses the file with its row and column.
"""

from __future__ import annotations

import hashlib
import io
import math
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
from python_calamine import CalamineError, CalamineWorkbook, PasswordError, SheetTypeEnum, SheetVisibleEnum

from importer.ingest import csv_read
from importer.ingest import bounds as xlsx_bounds
from importer.ingest.columns import canonical_lookup, normalise_header
from tasks import operations
from importer.ingest.problems import InputError, column_letter, shorten

EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
TEXT_SUFFIXES = {".csv", ".tsv", ".txt"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
#: Bigger files are refused before reading (memory stays within about four times this).
MAX_FILE_BYTES = 256 << 20
#: The header is looked for in this many non-empty rows at the top of a sheet.
HEADER_SCAN_ROWS = 20
_PASSWORD = "is password-protected (encrypted); save an unprotected copy"


@dataclass
class Sheet:
    file: str
    name: str
    headers: list[str]
    #: column header -> cell texts (None for empty), aligned with ``row_numbers``; read-only tuples, which the
    #: garbage collector stops walking once it has seen them (a 100,000-row sheet is the norm).
    columns: dict[str, Sequence[str | None]]
    row_numbers: list[int]
    notes: list[str] = field(default_factory=list)
    #: A repeated header is renamed ``title (column D)``; this maps the new name back to the header as written.
    original: dict[str, str] = field(default_factory=dict)
    #: Where the header was looked for, when no known column name was found (for "cannot tell" messages).
    header_note: str | None = None

    def __len__(self) -> int:
        return len(self.row_numbers)


@dataclass
class SourceFile:
    path: Path
    checksum: str
    sheets: list[Sheet]
    #: (sheet, reason): sheets not read at all, such as hidden ones; shown as warnings.
    warnings: list[tuple[str, str]] = field(default_factory=list)


def read_file(path: str | Path) -> SourceFile:
    """Read every visible sheet of one file. Raises InputError with one plain sentence when it cannot."""
    path = Path(path)
    name = path.name
    data = _read_bytes(name, path)
    checksum = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    warnings: list[tuple[str, str]] = []
    try:
        if suffix in EXCEL_SUFFIXES:
            sheets = _read_workbook(name, path, data, warnings)
        elif suffix in TEXT_SUFFIXES:
            sheets = [_read_text(name, path.stem, data, tab=suffix == ".tsv")]
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
        raise InputError(name, f"cannot be read ({type(exc).__name__}: {_one_line(exc)})") from None
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] + ("…" if len(text) > 160 else "")


def _read_workbook(name: str, path: Path, data: bytes, warnings: list[tuple[str, str]]) -> list[Sheet]:
    suffix = path.suffix.lower()
    if data.startswith(_OLE_MAGIC):
        if suffix in {".xlsx", ".xlsm"} or _ole_encrypted(data):
            raise InputError(name, _PASSWORD)
        if suffix == ".ods":
            raise InputError(name, f"is not a valid {suffix} workbook (wrong content for its extension)")
    elif suffix in {".xlsx", ".xlsm", ".ods"} and not data.startswith(_ZIP_MAGIC):
        raise InputError(name, f"is not a valid {suffix} workbook (wrong content for its extension)")
    archive = None
    if data.startswith(_ZIP_MAGIC):
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise InputError(name, f"is not a valid {suffix} workbook (damaged zip: {_one_line(exc)})") from None
        xlsx_bounds.check_zip(name, archive)
    bounds = _Bounds(name, archive, "ods" if b"opendocument" in data[:100] or suffix == ".ods" else "xlsx")
    bounds.check_ods()  # calamine reads every ODS table when it opens the file: check them all first
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except PasswordError:
        raise InputError(name, _PASSWORD) from None
    except CalamineError as exc:
        if any(w in str(exc).lower() for w in ("password", "encrypt")):
            raise InputError(name, _PASSWORD) from None
        raise InputError(name, f"cannot be read as a workbook ({type(exc).__name__}: {_one_line(exc)})") from None
    sheets = []
    for meta in book.sheets_metadata:
        if meta.typ != SheetTypeEnum.WorkSheet:
            continue  # chart and macro sheets hold no rows
        if meta.visible != SheetVisibleEnum.Visible:
            how = "very hidden" if meta.visible == SheetVisibleEnum.VeryHidden else "hidden"
            warnings.append((meta.name, f"{how} sheet ignored: hidden sheets are never imported; unhide it (or copy "
                                        "its rows to a visible sheet) to import it"))
            continue
        bounds.check(meta.name)
        try:
            sheet = book.get_sheet_by_name(meta.name)
        except PasswordError:
            raise InputError(name, _PASSWORD) from None
        rows, numbers = _sheet_rows(sheet)
        parsed = _from_grid(name, meta.name, rows, numbers)
        if parsed is not None:
            sheets.append(parsed)
    if not sheets and warnings:
        hidden = ", ".join(repr(s) for s, _ in warnings)
        raise InputError(name, f"has no visible sheet with data (hidden, so not imported: {hidden}); unhide the "
                               "sheet to import it")
    return sheets or _no_data(name)


class _Bounds:
    """Refuses a sheet whose grid would be absurd, from its XML, before calamine builds that grid."""

    def __init__(self, file: str, archive: zipfile.ZipFile | None, kind: str) -> None:
        self.file, self.archive, self.kind = file, archive, kind
        self.parts = xlsx_bounds.sheet_parts(archive) if archive is not None and kind == "xlsx" else {}
        self.ods = xlsx_bounds.ods_extents(archive) if archive is not None and kind == "ods" else None

    def check_ods(self) -> None:
        for sheet, extent in (self.ods or {}).items():
            if not extent.acceptable():
                raise xlsx_bounds.refuse(self.file, sheet, extent)

    def check(self, sheet: str) -> None:
        if self.archive is None or self.ods is not None:
            return  # .xls (BIFF): a sheet holds at most 256 x 65,536 cells; rows are filtered while reading
        names = set(self.archive.namelist())
        part = self.parts.get(sheet)
        candidates = [part] if part in names else xlsx_bounds.worksheet_parts(self.archive)
        for candidate in candidates:
            extent = xlsx_bounds.xlsx_extent(self.archive, candidate)
            if not extent.acceptable():
                far = xlsx_bounds.far_cells(self.archive, candidate) if extent.exact else (None, None)
                raise xlsx_bounds.refuse(self.file, sheet, extent, far)


def _sheet_rows(sheet) -> tuple[list[list[object]], list[int]]:  # noqa: ANN001 - a CalamineSheet
    """The rows that hold anything, with their spreadsheet numbers. Empty cells come as ''."""
    if sheet.height * sheet.width <= xlsx_bounds.MAX_GRID_CELLS:
        grid = sheet.to_python(skip_empty_area=False)
        keep = [i for i, row in enumerate(grid) if row.count("") != len(row)]
        if len(keep) == len(grid):
            return grid, list(range(1, len(grid) + 1))
        return [grid[i] for i in keep], [i + 1 for i in keep]
    start_row, start_col = sheet.start or (0, 0)
    rows, numbers = [], []
    pad = [""] * start_col
    for i, row in enumerate(sheet.iter_rows()):
        if row.count("") != len(row):
            rows.append(pad + row if pad else row)
            numbers.append(start_row + i + 1)
    return rows, numbers


def _ole_encrypted(data: bytes) -> bool:
    """An encrypted Office file is an OLE container with an EncryptionInfo stream (whatever its extension)."""
    return "EncryptionInfo".encode("utf-16-le") in data or "EncryptedPackage".encode("utf-16-le") in data


def _read_text(name: str, stem: str, data: bytes, tab: bool) -> Sheet:
    text = csv_read.decode(name, data)
    delimiter = "\t" if tab else csv_read.sniff_delimiter(text)
    grid, shared = csv_read.parse(name, text, delimiter)
    sheet = _from_grid(name, stem, grid, None, is_text=True, may_hold_nul="\x00" in text, shared=shared)
    return sheet if sheet is not None else _no_data(name)[0]


def _no_data(name: str) -> list[Sheet]:
    raise InputError(name, "contains no data (no header row found)")


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


def _texts_shared(values: tuple) -> list[str | None]:
    """cell_text for a column whose equal texts already are one object (as pandas' C reader makes them)."""
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


def _from_grid(file: str, sheet_name: str, grid: list[list[object]], numbers: list[int] | None = None,
               is_text: bool = False, may_hold_nul: bool = True, shared: bool = False) -> Sheet | None:
    """Find the header, drop empty rows/columns, keep spreadsheet row numbers.

    ``numbers`` are the spreadsheet numbers of ``grid``'s rows (default 1, 2, ...). The header is the first of
    the top non-empty rows that has a known column name (title rows above it are skipped, with a note), else the
    first non-empty row. Works column by column (a transpose, then one pass per column): 100,000-row files are
    the norm.
    """
    if not grid:
        return None
    if numbers is None:
        numbers = list(range(1, len(grid) + 1))
    width = max(len(r) for r in grid)
    if width == 0:
        return None
    padded = (r if len(r) == width else list(r) + [None] * (width - len(r)) for r in grid)
    texts = _texts_shared if shared else _texts
    cols = [texts(c) for c in zip(*padded, strict=True)]
    nonempty = [any(t) for t in zip(*cols, strict=True)]
    filled = [i for i, ne in enumerate(nonempty) if ne]
    if not filled:
        return None
    notes: list[str] = []
    header_index, header_note = _find_header(cols, filled, numbers, notes)
    header = [c[header_index] for c in cols]
    data_rows = [i for i in filled if i > header_index]
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
    columns = {h: tuple([cols[j][i] for i in data_rows]) for h, j in zip(headers, keep, strict=True)}
    return Sheet(file=file, name=sheet_name, headers=headers, columns=columns,
                 row_numbers=[numbers[i] for i in data_rows], notes=notes, original=original, header_note=header_note)


def _known_names() -> set[str]:
    return {name for op in operations.sheet_kinds() for name in canonical_lookup(op)}


def _find_header(cols: list[list[str | None]], filled: list[int], numbers: list[int],
                 notes: list[str]) -> tuple[int, str | None]:
    known = _known_names()
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


def _refuse_cells_beyond_header(file: str, cols: list[list[str | None]], header_width: int, data_rows: list[int],
                                numbers: list[int]) -> None:
    """In a CSV, a value right of the last header means a delimiter inside a cell that is not quoted (or a lost
    quote): the row's cells are shifted, so the file is refused rather than read one column off."""
    for j in range(header_width, len(cols)):
        i = next((i for i in data_rows if cols[j][i] is not None), None)
        if i is not None:
            last = column_letter(header_width - 1) if header_width else "none"
            raise InputError(file, f"row {numbers[i]}, column {column_letter(j)}: a value right of the last header "
                                   f"({last}): a cell holding the delimiter without quotes, a lost quote, or a "
                                   f"column without a header? ({shorten(cols[j][i], 40)!r})")


def _refuse_nul(file: str, sheet: str, column: list[str | None], numbers: list[int], j: int, is_text: bool) -> None:
    if "\x00" not in "".join(filter(None, column)):
        return
    i = next(i for i, v in enumerate(column) if v is not None and "\x00" in v)
    where = f"row {numbers[i]}, column {column_letter(j)}" if is_text else \
        f"sheet {sheet!r}, row {numbers[i]}, column {column_letter(j)}"
    raise InputError(file, f"{where}: contains a NUL character (byte 0); the file is damaged or not a spreadsheet "
                           "export, nothing was read")

