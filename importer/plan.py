"""The plan: what an import will send, row by row. Plain and JSON-serialisable; no secrets in it."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from importer.problems import ERROR, Problem

COURSE = "course"
CHAPTER = "chapter"


@dataclass
class PlanItem:
    """One API call: Create Course for a course row, Update Chapter for a chapter row."""

    kind: str
    row_id: str  # "<sheet>:<row>", unique in the import
    file: str
    sheet: str
    row: int
    key: str  # stable idempotency key of the row (see README: keys and repeats)
    title: str
    body: dict
    chapter_id: str | None = None  # chapters given by id
    course_ref: str | None = None  # chapters given by course_ref: the referenced course's key
    chapter_slot: str | None = None  # "first" | "second"
    depends_on: str | None = None  # row_id of the course row in this import the chapter waits for
    source: dict = field(default_factory=dict)  # the row's cells as read, for the results file


@dataclass
class UnsentRow:
    """A row that will not be sent: ``invalid`` (with reasons) or ``skipped`` (a repeat of another row)."""

    kind: str
    row_id: str
    file: str
    sheet: str
    row: int
    key: str
    title: str
    state: str
    reason: str
    source: dict = field(default_factory=dict)


@dataclass
class Plan:
    files: list[dict] = field(default_factory=list)  # [{"name", "checksum"}]
    items: list[PlanItem] = field(default_factory=list)
    unsent: list[UnsentRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: header order per sheet, so the results file can give rows back as they came.
    headers: dict[str, list[str]] = field(default_factory=dict)

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
        kinds = Counter(i.kind for i in self.items)
        unsent = Counter(u.state for u in self.unsent)
        return {"courses_to_create": kinds[COURSE], "chapters_to_update": kinds[CHAPTER],
                "chapters_waiting_on_courses": sum(1 for i in self.items if i.depends_on),
                "invalid_rows": unsent["invalid"], "repeated_rows": unsent["skipped"],
                "errors": len(self.errors), "warnings": len(self.warnings)}

    def to_dict(self) -> dict:
        return {"files": self.files, "items": [asdict(i) for i in self.items],
                "unsent": [asdict(u) for u in self.unsent], "problems": [p.as_dict() for p in self.problems],
                "headers": self.headers}

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        return cls(files=data["files"], items=[PlanItem(**i) for i in data["items"]],
                   unsent=[UnsentRow(**u) for u in data["unsent"]],
                   problems=[Problem(**p) for p in data["problems"]], headers=data.get("headers", {}))
