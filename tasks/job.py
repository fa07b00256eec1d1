"""The job record: one import of some files to one target (API URL + whitelabel host).

``tasks.rowstore`` keeps it as the hash ``tm:job:{j}``, one JSON value per field, and reads it back as a ``Job``.
The fields the worker side and the command line read are typed; any other field a command stores with
``RowStore.set_job`` lands in ``extra`` (``Job.get`` reads both), so a record written by another version still reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from tasks.ledger import target_id
from tasks.rows import RowFailure

#: The modes of an import, as the command line offers them (importer.matching.modes gives each its policy; kept
#: here so that the command line starts without loading matching).
MODES = ("create", "merge", "update", "replace")


@dataclass(frozen=True)
class Blocked:
    """The job's credential was refused (or this worker has none) on ``row``: its other rows are not sent."""

    failure: RowFailure
    row: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.failure.as_dict(), "row": self.row}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Blocked:
        return cls(RowFailure.from_dict(data), data.get("row"))


@dataclass
class Job:
    id: str
    api_url: str = ""
    host: str = ""
    total: int = 0  # rows in the job, settled ones included
    created_at: float = 0.0
    label: str = ""
    mode: str = "create"  # create | merge | update | replace
    files: list[dict] = field(default_factory=list)  # [{"name", "checksum"}] in input order
    headers: dict[str, list[str]] = field(default_factory=dict)  # header order per sheet, for the results file
    fingerprint: str | None = None  # same files, target and mode: the same job (run again = resume)
    published: bool = False  # every ready row has been handed to the park
    blocked: Blocked | None = None
    sandbox: bool = False  # imported into the local sandbox (run --sandbox)
    duplicates: list[dict] = field(default_factory=list)  # courses TagMango holds twice after the job
    duplicates_checked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # any other stored field, by name

    @property
    def target(self) -> str:
        """The hashed target id the park and the ledger are keyed by."""
        return target_id(self.api_url, self.host)

    def get(self, name: str, default: Any = None) -> Any:
        """A stored field by name, typed or not (``default`` when absent or empty)."""
        value = getattr(self, name) if name in _TYPED else self.extra.get(name)
        return default if value is None else value

    def to_fields(self) -> dict[str, Any]:
        """Field name -> JSON-ready value, as stored in the job's hash."""
        out = {f: getattr(self, f) for f in _TYPED}
        out["blocked"] = self.blocked.as_dict() if self.blocked else None
        return {**out, **self.extra}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Job:
        typed = {k: v for k, v in data.items() if k in _TYPED and v is not None}
        typed["blocked"] = Blocked.from_dict(data["blocked"]) if data.get("blocked") else None
        return cls(**typed, extra={k: v for k, v in data.items() if k not in _TYPED})


_TYPED = frozenset(f.name for f in fields(Job)) - {"extra"}
