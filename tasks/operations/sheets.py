"""The sheet side of the registry: a ``SheetKind`` is a kind of sheet the importer reads.

It says which sheet names and which columns mean it, each column's rule, and what one spreadsheet row of it
becomes: a ``Draft`` (request body, idempotency key, parameters, what is wrong with the row) for the call its
rows make (``operation``), and which row of the same import it names as its parent. A curriculum has no
operation of its own: its rows are planned as whole course trees (importer/ingest/tree.py).

Validation (importer/ingest) only talks to sheets through this class; workers never see it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tasks.operations import cells
from tasks.operations.base import Operation
from tasks.rows import Row

Rule = Callable[[str], Any]


@dataclass(frozen=True)
class Column:
    name: str
    rule: Rule = cells.text
    #: The sheet must have this column (or a ``--set`` value for it).
    required: bool = False
    #: Its presence tells that a sheet is of this kind.
    marker: bool = False


@dataclass
class Draft:
    """What a sheet kind makes of one spreadsheet row."""

    key: str
    title: str
    body: dict
    params: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)
    #: (column or None, shown value, reason)
    errors: list[tuple[str | None, str, str]] = field(default_factory=list)
    warnings: list[tuple[str | None, str, str]] = field(default_factory=list)


class SheetKind:
    #: The sheet's name in messages, the (normalised) sheet names that mean it, and its columns.
    sheet: str = ""
    sheet_names: tuple[str, ...] = ()
    columns: tuple[Column, ...] = ()
    #: When a sheet is classified by its columns, higher goes first (markers of more specific kinds).
    classify_priority: int = 0
    #: The call each row makes; None: the rows are a tree planned as a whole (importer/ingest/tree.py).
    operation: Operation | None = None
    #: The operation of the parent row a row may name (its result's ids are what the row ``needs``), and the
    #: column in which a row names its parent's key.
    parent_op: str | None = None
    parent_column: str | None = None

    @property
    def plans_tree(self) -> bool:
        return self.operation is None

    def rules(self) -> dict[str, Rule]:
        return {c.name: c.rule for c in self.columns}

    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def markers(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.marker)

    def check_columns(self, present: set[str]) -> str | None:
        """A sheet-level problem with the set of columns (beyond required ones), or None."""
        return None

    def draft(self, values: dict[str, Any], present: set[str]) -> Draft:
        raise NotImplementedError

    def plain_keys(self, values: Callable[[str], Sequence[Any] | None], present: set[str], size: int) \
            -> list[str | None] | None:
        """What ``draft`` would make of every row, column by column (``validate`` without ``--mode`` counts such
        rows instead of building them: a 100,000-row sheet in a fraction of the time).

        ``values(column)`` gives a column's cell values (None in a cell that is empty or breaks its rule, "" where
        an empty ``--set`` constant filled an empty cell; None for a column the sheet lacks). Per row: the key its
        draft would give, if the draft would find nothing wrong with the row and nothing to warn about; else None
        (the row is drafted as usual). None: this kind has no such check (every row is drafted). Must agree with
        ``draft`` (tests/test_plain_keys.py)."""
        return None

    def from_results(self, values: dict[str, Any]) -> dict[str, Any]:
        """A row read back from a results file: drop the ids the job filled in beside the row's own reference
        (they are output, not input). By default every value is input."""
        return values

    def key_column(self, row: Row) -> str:
        """The column a duplicate key is reported on."""
        return "key"

    def parent_key(self, row: Row) -> str | None:
        """The key of the row (of ``parent_op``) this row names as its parent, if it names one."""
        return row.params.get(self.parent_column) if self.parent_column else None

    def find_parent(self, row: Row, candidates: dict[str, Row]) -> Row | None:
        """The parent among rows of ``parent_op`` by key."""
        key = self.parent_key(row)
        return candidates.get(key) if key else None

    def link(self, row: Row, parent: Row) -> None:
        """Make ``row`` wait for ``parent`` (a row of this import)."""
        row.parent = parent.row_id

    def __repr__(self) -> str:
        return f"<SheetKind {self.sheet}>"
