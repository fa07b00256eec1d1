"""Rows validation counted instead of building, built when the plan is sent, a batch at a time.

A sheet's rows whose key its kind's columnar check finds plain (``SheetKind.plain_keys``: the draft would find
nothing to say) and unique are not drafted during validation: only their cells' outcomes (``cellrules.Outcomes``)
are kept. ``run`` builds them batch by batch as it matches and writes them (``Plan.chunks``), so a million plain
rows are never held as a million ``Row``s (issue 23; rows that name other rows are matched together, in one
chunk); ``validate`` only counts them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from importer.ingest import cellrules
from importer.ingest.records import SheetRow
from tasks.operations import Draft, SheetKind
from tasks.rows import Row

#: Rows drafted per batch.
BATCH = 1000


def new_row(sheet_label: str, op_name: str, kind: str, file: str, sheet: str, record: SheetRow, draft: Draft) -> Row:
    """The row a record of a sheet becomes, by its draft (validation and deferred rows alike)."""
    number = record.number
    return Row(f"{sheet_label}:{number}", op_name, kind, file, sheet, number, draft.key, draft.title, draft.body,
               params=draft.params, ids=draft.ids, source=record.source)


@dataclass
class DeferredRows:
    """The deferred rows of one sheet: every row but those at the indexes ``drafted`` (built at validation)."""

    cells: cellrules.Outcomes
    sheet_kind: SheetKind
    sheet_label: str
    present: set[str]
    drafted: frozenset[int]

    @property
    def op(self) -> str:
        return self.sheet_kind.operation.name

    def __len__(self) -> int:
        return len(self.cells.sheet.row_numbers) - len(self.drafted)

    def rows(self) -> Iterator[Row]:
        """The rows in the sheet's order, drafted ``BATCH`` at a time."""
        size, drafted = len(self.cells.sheet.row_numbers), self.drafted
        indexes = iter(range(size)) if not drafted else (i for i in range(size) if i not in drafted)
        op, sheet, draft_of, present = self.sheet_kind.operation, self.cells.sheet, self.sheet_kind.draft, self.present
        while batch := list(itertools.islice(indexes, BATCH)):
            for record in cellrules.records(self.cells, batch):
                draft = draft_of(record.values, present)
                if record.errors or draft.errors or draft.warnings:  # plain_keys disagrees with draft: a bug
                    raise RuntimeError(f"{sheet.file} {sheet.name} row {record.number}: counted as plain at "
                                       "validation, but its draft has something to say")
                yield new_row(self.sheet_label, op.name, op.kind, sheet.file, sheet.name, record, draft)
