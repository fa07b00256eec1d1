"""The plan: what an import will send, row by row. Plain and JSON-serialisable; no secrets in it.

Its rows are the worker's own ``tasks.rows.Row`` records: what validation builds is exactly what a
worker runs.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from importer.ingest.deferred import DeferredRows
from importer.ingest.problems import ERROR, Problem
from tasks import operations
from tasks.rows import Row, RowState

#: Rows built, matched and written at a time when a plan is sent (``Plan.chunks``).
CHUNK = 5000


def counted(n: int, label: str, singular: str | None = None) -> str:
    """``1 course to create``, ``2 courses to create``: ``label`` is plural in its first word, ``singular`` (if
    given) is the label for one."""
    if n != 1:
        return f"{n} {label}"
    if singular is None:
        first, _, rest = label.partition(" ")
        singular = first.removesuffix("s") + (f" {rest}" if rest else "")
    return f"1 {singular}"


@dataclass
class Plan:
    files: list[dict] = field(default_factory=list)  # [{"name", "checksum"}]
    rows: list[Row] = field(default_factory=list)  # rows to send
    unsent: list[Row] = field(default_factory=list)  # rows that will not be sent: invalid, or skipped repeats
    problems: list[Problem] = field(default_factory=list)
    #: header order per sheet, so the results file can give rows back as they came.
    headers: dict[str, list[str]] = field(default_factory=dict)
    #: (file, sheet) of every sheet whose rows are planned, in the order validation checked them.
    sheets: list[tuple[str, str]] = field(default_factory=list)
    #: Rows to send that validation found plain and counted instead of building (``build_plan(defer=True)``): built
    #: chunk by chunk when the plan is sent (``chunks``), never all at once. ``to_dict`` leaves them out.
    deferred: list[DeferredRows] = field(default_factory=list)

    @property
    def counted(self) -> Counter:
        """Deferred rows per operation."""
        out: Counter = Counter()
        for part in self.deferred:
            out[part.op] += len(part)
        return out

    def order_key(self) -> Callable[[Row], tuple[int, str, int]]:
        """A row's place in the job: file, sheet, row."""
        files = {f["name"]: i for i, f in enumerate(self.files)}
        return lambda r: (files.get(r.file, 0), r.sheet, r.row)

    def check_key(self) -> Callable[[Row], tuple[int, int]]:
        """A row's place in the plan: its sheet as validation checked them (registry order, then as the files
        hold them), then row. Matching sees rows in this order (which row of two alike takes a live course)."""
        places: dict[tuple[str, str], int] = {}
        for sheet in self.sheets:
            places.setdefault(sheet, len(places))
        return lambda r: (places.get((r.file, r.sheet), 0), r.row)

    def _sheets_in_job_order(self) -> bool:
        files = {f["name"]: i for i, f in enumerate(self.files)}
        places = list(dict.fromkeys(self.sheets))
        return places == sorted(places, key=lambda s: (files.get(s[0], 0), s[1]))

    def chunks(self, size: int | None = None) -> Iterator[list[Row]]:
        """Every row, to send and unsent (these final, with their ``finished_at``), in input order (file, sheet,
        row), ``size`` (default ``CHUNK``) at a time; deferred rows are built as their chunk comes. All in one
        chunk when a row names another row of the plan (a chapter its course, a tree's lessons: matching settles
        those together), and when the job's order of sheets (by name) is not the order validation checked them in
        (matching sees a chunk in the plan's order, ``check_key``)."""
        key = self.order_key()
        for row in self.unsent:
            row.finished_at = row.finished_at or time.time()
        built = sorted(itertools.chain(self.rows, self.unsent), key=key)
        rows = heapq.merge(built, *(part.rows() for part in self.deferred), key=key)
        if any(r.parent or r.place for r in self.rows) or not self._sheets_in_job_order():
            yield list(rows)
            return
        while chunk := list(itertools.islice(rows, size or CHUNK)):
            yield chunk

    def build_deferred(self) -> None:
        """Build the deferred rows into ``rows`` (in input order): for what reads the whole plan (a dry run)."""
        if self.deferred:
            key = self.order_key()
            self.rows = sorted(itertools.chain(self.rows, *(part.rows() for part in self.deferred)), key=key)
            self.deferred = []

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict:
        by_op = Counter(r.op for r in self.rows) + self.counted
        unsent = Counter(r.state for r in self.unsent if not r.outcome)
        out = {op.summary_key: by_op[op.name] for op in operations.OPERATIONS}
        out.update(waiting_for_parent=sum(1 for r in self.rows if r.waiting_for_parent),
                   invalid_rows=unsent[RowState.INVALID], repeated_rows=unsent[RowState.SKIPPED],
                   already_in_tagmango=sum(1 for r in self.unsent if r.outcome in ("exists", "unchanged")),
                   not_in_tagmango=sum(1 for r in self.unsent if r.state is RowState.DEAD),
                   errors=len(self.errors), warnings=len(self.warnings))
        return out

    def describe(self) -> str:
        """The summary as a sentence: "20 courses to create, 1 chapter to update (...)"."""
        s = self.summary()
        parts = ", ".join(counted(s[op.summary_key], op.summary_label) for op in operations.OPERATIONS
                          if s[op.summary_key]) or "nothing to send"
        waiting = s["waiting_for_parent"]
        settled = (f"; {s['already_in_tagmango']} already in TagMango" if s["already_in_tagmango"] else "") + (
            f"; {s['not_in_tagmango']} dead before sending" if s["not_in_tagmango"] else "")
        invalid = counted(s["invalid_rows"], "invalid rows", "invalid row")
        repeated = counted(s["repeated_rows"], "repeated rows", "repeated row")
        return (f"{parts} ({waiting} wait{'s' if waiting == 1 else ''} for a row of this import){settled}; "
                f"{invalid}, {repeated}; {counted(s['errors'], 'errors')}, {counted(s['warnings'], 'warnings')}.")

    def to_dict(self) -> dict:
        return {"files": self.files, "rows": [r.to_dict() for r in self.rows],
                "unsent": [r.to_dict() for r in self.unsent], "problems": [p.as_dict() for p in self.problems],
                "headers": self.headers}

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        return cls(files=data["files"], rows=[Row.from_dict(r) for r in data["rows"]],
                   unsent=[Row.from_dict(r) for r in data["unsent"]],
                   problems=[Problem(**p) for p in data["problems"]], headers=data.get("headers", {}))
