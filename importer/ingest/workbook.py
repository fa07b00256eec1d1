"""Excel and ODS workbooks (calamine): encrypted files named, zip bombs and absurd sheets refused before
calamine builds a grid (``importer.ingest.bounds``), hidden sheets skipped with a warning, every visible sheet
into a ``Sheet`` (``importer.ingest.grid``).
"""

from __future__ import annotations

import io
import zipfile

from python_calamine import CalamineError, CalamineWorkbook, PasswordError, SheetTypeEnum, SheetVisibleEnum

from importer.ingest import bounds
from importer.ingest.extent import MAX_GRID_CELLS
from importer.ingest.grid import Sheet, from_grid
from importer.ingest.problems import NO_DATA, InputError, one_line

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_PASSWORD = "is password-protected (encrypted); save an unprotected copy"


def read_workbook(name: str, suffix: str, data: bytes, known: frozenset[str],
                  warnings: list[tuple[str, str]]) -> list[Sheet]:
    """Every visible sheet with data; ``warnings`` gets (sheet, reason) for the sheets not read."""
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
            raise InputError(name, f"is not a valid {suffix} workbook (damaged zip: {one_line(exc)})") from None
        bounds.check_zip(name, archive)
    limits = bounds.Bounds(name, archive, "ods" if b"opendocument" in data[:100] or suffix == ".ods" else "xlsx")
    limits.check_ods()  # calamine reads every ODS table when it opens the file: check them all first
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except PasswordError:
        raise InputError(name, _PASSWORD) from None
    except CalamineError as exc:
        if any(w in str(exc).lower() for w in ("password", "encrypt")):
            raise InputError(name, _PASSWORD) from None
        raise InputError(name, f"cannot be read as a workbook ({type(exc).__name__}: {one_line(exc)})") from None
    sheets = []
    for meta in book.sheets_metadata:
        if meta.typ != SheetTypeEnum.WorkSheet:
            continue  # chart and macro sheets hold no rows
        if meta.visible != SheetVisibleEnum.Visible:
            how = "very hidden" if meta.visible == SheetVisibleEnum.VeryHidden else "hidden"
            warnings.append((meta.name, f"{how} sheet ignored: hidden sheets are never imported; unhide it (or copy "
                                        "its rows to a visible sheet) to import it"))
            continue
        limits.check(meta.name)
        try:
            sheet = book.get_sheet_by_name(meta.name)
        except PasswordError:
            raise InputError(name, _PASSWORD) from None
        rows, numbers = _sheet_rows(sheet)
        parsed = from_grid(name, meta.name, rows, known, numbers)
        if parsed is not None:
            sheets.append(parsed)
    if not sheets and warnings:
        hidden = ", ".join(repr(s) for s, _ in warnings)
        raise InputError(name, f"has no visible sheet with data (hidden, so not imported: {hidden}); unhide the "
                               "sheet to import it")
    if not sheets:
        raise InputError(name, NO_DATA)
    return sheets


def _sheet_rows(sheet) -> tuple[list[list[object]], list[int]]:  # noqa: ANN001 - a CalamineSheet
    """The rows that hold anything, with their spreadsheet numbers. Empty cells come as ''."""
    if sheet.height * sheet.width <= MAX_GRID_CELLS:
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


