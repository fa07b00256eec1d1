"""How far a workbook sheet's data reaches (an ``Extent``), and how far it may reach before calamine reads it.

calamine turns a sheet into one dense grid from A1 (or the first value) to the last cell that holds a value, so a
single stray value at XFD1048576 asks for 17 billion cells and aborts the process; a stray value at AZ1048576
costs gigabytes. ``xlsx_extent`` and ``ods_extent`` measure a sheet from its XML, streamed once in chunks
(nothing is kept per cell); ``bounds`` refuses a sheet whose grid would be absurd.
"""

from __future__ import annotations

from dataclasses import dataclass

from importer.ingest.problems import column_letter

#: A sheet's grid (rows x columns up to the farthest value) may always be this big...
MAX_GRID_CELLS = 4_000_000
#: ... or this many times the cells that really hold a value (a sparse but honest sheet).
SPARSE_FACTOR = 8
#: Never more than this many cells in one grid, however full (about 800 MB in calamine alone).
MAX_GRID_HARD = 25_000_000
#: Uncompressed XML a workbook may unpack to, all parts together.
MAX_XML_BYTES = 1 << 30
#: A part that unpacks to more than ``BOMB_MIN_BYTES`` and more than this many times its packed size is a zip bomb.
BOMB_RATIO = 400
BOMB_MIN_BYTES = 64 << 20
#: workbook.xml and its rels are small; a huge one is not a workbook we can trust.
MAX_SMALL_PART = 32 << 20
CHUNK = 4 << 20


@dataclass
class Extent:
    """Cells holding a value in one sheet: how many, and the farthest row and column (1-based, 0 when none)."""

    rows: int = 0
    cols: int = 0
    values: int = 0
    exact: bool = True  # False: rows/cols also count empty (styled) cells, so they may be too big
    far_row: str | None = None  # a cell with a value at the farthest row, e.g. "A1048576", when known
    far_col: str | None = None  # ... and at the farthest column

    @property
    def grid(self) -> int:
        return self.rows * self.cols

    def acceptable(self) -> bool:
        return self.grid <= MAX_GRID_HARD and (self.grid <= MAX_GRID_CELLS or self.grid <= SPARSE_FACTOR * self.values)


def col_letters(index: int) -> str:
    """1-based: 1 -> A, 27 -> AA."""
    return column_letter(index - 1)


def col_index(letters: bytes | str) -> int:
    """A -> 1, AA -> 27."""
    n = 0
    for ch in letters.upper() if isinstance(letters, str) else letters.upper().decode("ascii"):
        n = n * 26 + ord(ch) - 64
    return n
