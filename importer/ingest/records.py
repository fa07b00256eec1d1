"""One spreadsheet row after its cells went through their column rules: what validation hands a sheet kind's
draft, or the tree planner (importer/ingest/tree.py) a curriculum's rows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SheetRow:
    number: int  # the row number the spreadsheet shows
    values: dict[str, object]
    errors: list[tuple[str | None, str, str]]  # (column, value, reason) of cells that break their rule
    source: dict[str, str | None]  # the cells as read
