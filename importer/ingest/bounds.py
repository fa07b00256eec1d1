"""Refusing a workbook before calamine reads it: zip bombs and absurd archives from the zip directory, and any
sheet whose grid would be absurd (``Extent.acceptable``), measured from its XML (``xlsx_extent``, ``ods_extent``).
"""

from __future__ import annotations

import re
import zipfile

from importer.ingest.extent import BOMB_MIN_BYTES, BOMB_RATIO, MAX_GRID_HARD, MAX_XML_BYTES, Extent, col_letters
from importer.ingest.ods_extent import ods_extents
from importer.ingest.problems import InputError
from importer.ingest.xlsx_extent import far_cells, sheet_parts, worksheet_parts, xlsx_extent


def check_zip(file: str, zf: zipfile.ZipFile) -> None:
    """Refuse zip bombs and absurd archives from their directory, before unpacking anything."""
    total = 0
    for info in zf.infolist():
        total += info.file_size
        if info.file_size > BOMB_MIN_BYTES and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
            raise InputError(file, f"part {info.filename} unpacks to {info.file_size:,} bytes from "
                                   f"{info.compress_size:,}: not a spreadsheet we can read safely")
    if total > MAX_XML_BYTES:
        raise InputError(file, f"unpacks to {total:,} bytes (more than {MAX_XML_BYTES:,}): too large to check; "
                               "split it into smaller files")


def refuse(file: str, sheet: str, extent: Extent, far: tuple[str | None, str | None] = (None, None)) -> InputError:
    """One line naming the sheet, the far cell(s) and what to do."""
    far_row, far_col = far
    if not far_row and not far_col:
        far_row, far_col = extent.far_row, extent.far_col
    cells = [c for c in dict.fromkeys((far_row, far_col)) if c]
    if cells:
        where = " and ".join(cells)
        first = re.match(r"([A-Z]+)([0-9]+)", cells[0])
        what = (f"sheet {sheet!r}, row {first.group(2)}, column {first.group(1)}: a value at {where} lies far outside "
                f"the rest of the data")
    else:
        what = f"sheet {sheet!r}: values reach row {extent.rows:,}, column {col_letters(extent.cols)}"
    reason = (f"{what} (a grid of {extent.grid:,} cells for {extent.values:,} values); delete it, or clear the rows "
              f"and columns after your data, and save again")
    if extent.grid > MAX_GRID_HARD and extent.values * 2 >= extent.grid:
        reason = (f"sheet {sheet!r}: {extent.values:,} cells hold values (up to row {extent.rows:,}, column "
                  f"{col_letters(extent.cols)}): too large to check at once; split it into files of at most "
                  f"{MAX_GRID_HARD:,} cells")
    return InputError(file, reason)


class Bounds:
    """Refuses a sheet whose grid would be absurd, from its XML, before calamine builds that grid."""

    def __init__(self, file: str, archive: zipfile.ZipFile | None, kind: str) -> None:
        self.file, self.archive, self.kind = file, archive, kind
        self.parts = sheet_parts(archive) if archive is not None and kind == "xlsx" else {}
        self.ods = ods_extents(archive) if archive is not None and kind == "ods" else None

    def check_ods(self) -> None:
        for sheet, extent in (self.ods or {}).items():
            if not extent.acceptable():
                raise refuse(self.file, sheet, extent)

    def check(self, sheet: str) -> None:
        if self.archive is None or self.ods is not None:
            return  # .xls (BIFF): a sheet holds at most 256 x 65,536 cells; rows are filtered while reading
        names = set(self.archive.namelist())
        part = self.parts.get(sheet)
        candidates = [part] if part in names else worksheet_parts(self.archive)
        for candidate in candidates:
            extent = xlsx_extent(self.archive, candidate)
            if not extent.acceptable():
                far = far_cells(self.archive, candidate) if extent.exact else (None, None)
                raise refuse(self.file, sheet, extent, far)
