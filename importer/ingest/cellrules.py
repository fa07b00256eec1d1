"""A sheet's cells through their column rules, column by column.

Each column's rule runs once per distinct text of the column (catalog columns repeat a lot: mangoes, flags, days;
an id column's texts are all distinct and its rule is cheap), and the outcomes are mapped back onto the rows with
one dict look-up per cell at C speed (``map``); rows are then assembled from the columns. A ``--set`` constant fills
a column's empty cells. Same values, errors and order as applying the rules row by row.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from importer.ingest import limits
from importer.ingest.grid import Sheet
from importer.ingest.records import SheetRow
from tasks.operations import SheetKind
from tasks.operations.cells import CellError
from tasks.operations.cells import text as text_rule

_MISSING = object()  # an empty cell without a constant: the column is left out of the row's values
#: A cell this tool wrote as ``'=…`` (report.tables.defuse, so that Excel never runs it) reads back without the ``'``.
_DEFUSED = ("=", "+", "-", "@")


@dataclass
class Outcomes:
    """Every mapped column (and ``--set`` constant) of a sheet through its rule: per column its texts and each
    cell's outcome (a value, a ``CellError`` or ``_MISSING``), aligned with the sheet's rows."""

    sheet: Sheet
    names: list[str]
    texts: list[Sequence[str | None]]
    outcomes: list[Sequence[object]]  # (read only: a text column's may be its texts)
    #: Per column: every outcome is a plain value (no error, no list, no empty cell).
    plain: list[bool]

    def values(self, column: str) -> Sequence[object] | None:
        """The column's values, None in a cell that is empty or breaks its rule; None if the sheet lacks it."""
        if column not in self.names:
            return None
        i = self.names.index(column)
        if self.plain[i]:
            return self.outcomes[i]
        return [None if o is _MISSING or isinstance(o, CellError) else o for o in self.outcomes[i]]

    def failed(self) -> set[int]:
        """Indexes of the rows with a cell that breaks its column's rule."""
        return {i for column, simple in zip(self.outcomes, self.plain, strict=True) if not simple
                for i, o in enumerate(column) if isinstance(o, CellError)}


def outcomes(sheet: Sheet, sheet_kind: SheetKind, mapped: dict[str, str], constants: dict[str, str]) -> Outcomes:
    """Each mapped column's rule applied to its cells (``constants``: ``--set``)."""
    cells_by_column = {column: sheet.columns[header] for header, column in mapped.items()}
    rule_table = limits.bounded(sheet_kind.rules(), cells_by_column)
    constants = {c: v for c, v in constants.items() if c in rule_table}
    present = set(mapped.values())
    size = len(sheet.row_numbers)
    by_column = [(column, sheet.columns[header], constants.get(column)) for header, column in mapped.items()]
    by_column += [(column, (None,) * size, constant) for column, constant in constants.items()
                  if column not in present]
    out = Outcomes(sheet, [], [], [], [])
    for column, column_cells, constant in by_column:
        column_texts, column_outcomes, simple = _column(column_cells, constant, rule_table[column])
        out.names.append(column)
        out.texts.append(column_texts)
        out.outcomes.append(column_outcomes)
        out.plain.append(simple)
    return out


def records(cells: Outcomes, only: Sequence[int] | None = None) -> Iterator[SheetRow]:
    """The sheet's rows (those at the indexes ``only``, in their order, if given) with their values and errors."""
    sheet = cells.sheet
    pick = (lambda column: column) if only is None else (lambda column: [column[i] for i in only])
    names, texts, outcomes_, plain = cells.names, cells.texts, cells.outcomes, cells.plain
    headers = list(sheet.headers)
    numbers = pick(sheet.row_numbers)
    size = len(numbers)
    sources = _rows([pick(sheet.columns[h]) for h in headers], size)
    # Columns whose every outcome is a plain value (no error, no list, no empty cell) go into a row's values as they
    # are; only the others are looked at cell by cell. (Nothing reads a row's values in column order.)
    plain_names = [n for n, p in zip(names, plain, strict=True) if p]
    plain_rows = _rows([pick(o) for o, p in zip(outcomes_, plain, strict=True) if p], size)
    other = [i for i, p in enumerate(plain) if not p]
    other_names = [names[i] for i in other]
    other_rows = _rows([pick(outcomes_[i]) for i in other], size)
    text_rows = _rows([pick(texts[i]) for i in other], size)
    for number, source, plain_outs, outs, cell_texts in zip(numbers, sources, plain_rows, other_rows,
                                                            text_rows, strict=True):
        values: dict[str, object] = dict(zip(plain_names, plain_outs, strict=True))
        errors: list[tuple[str | None, str, str]] = []
        for column, outcome, text in zip(other_names, outs, cell_texts, strict=True):
            if outcome is _MISSING:
                continue
            if isinstance(outcome, list):
                values[column] = list(outcome)  # each row its own list (a body may be changed later)
            elif isinstance(outcome, CellError):
                errors.append((column, text, str(outcome)))
            else:
                values[column] = outcome
        yield SheetRow(number, values, errors, dict(zip(headers, source, strict=True)))


def _rows(columns: list[Sequence], size: int) -> Iterator[tuple]:
    return zip(*columns, strict=True) if columns else itertools.repeat((), size)


def _undefused(texts: Sequence[str | None]) -> Sequence[str | None]:
    step = 1 << 16  # (a slice at a time: a million-row column joined whole took 40 MB more at the read's peak)
    if not any("\n'" in "\n" + "\n".join(filter(None, texts[i:i + step])) for i in range(0, len(texts), step)):
        return texts  # the common case, at C speed: nothing copied
    return [t[1:] if t is not None and t[:1] == "'" and t[1:2] in _DEFUSED else t for t in texts]


def _column(cells: Sequence[str | None], constant: str | None,
            rule: Callable[[str], object]) -> tuple[Sequence[str | None], Sequence[object], bool]:
    """The column's texts (a constant in its empty cells), each cell's outcome (a value, a ``CellError`` or
    ``_MISSING``), and whether every outcome is a value that is not a list."""
    texts = _undefused(cells if constant is None else [constant if t is None else t for t in cells])
    if rule is text_rule:  # a free-text column whose texts all fit: each cell is its own value (the same list)
        full = None not in texts
        return texts, texts if full else [_MISSING if t is None else t for t in texts], full
    table: dict[str | None, object] = {}
    simple = True
    for text in dict.fromkeys(texts):
        if text is None:
            table[None] = _MISSING
            simple = False
            continue
        try:
            outcome = table[text] = rule(text)
        except CellError as exc:
            table[text] = exc
            simple = False
        else:
            if simple and isinstance(outcome, list):
                simple = False
    return texts, list(map(table.__getitem__, texts)), simple
