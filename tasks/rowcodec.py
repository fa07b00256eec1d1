"""How a row record is stored in Redis (``tm:job:{j}:rows``): compact JSON, the job's shared parts stored once.

A record holds only the fields that differ from ``Row``'s defaults, without its row id (the hash field is the id).
What the rows of one sheet share (operation, kind, file, sheet and the source's column names) is a *template*,
stored once per job (``tm:job:{j}:templates``, a JSON list); a record names its template as ``"t"`` and gives its
source cells as a list in the template's column order. Field names stay as ``Row`` names them: the dispatcher's Lua
reads ``attempts`` from a record (absent = 0). A record without ``"t"`` (written before this module, or a row whose
operation changed) is a plain ``Row`` dict and reads as before.

100,000 course rows: about 200 bytes a record instead of 750, and no ``dataclasses.asdict`` (which deep-copies every
value; it was most of an enqueue's time).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, fields
from typing import Any, NamedTuple

from tasks.rows import Row, RowState

#: (op, kind, file, sheet, source column names)
Template = tuple[str, str, str, str, tuple[str, ...]]
#: More templates than this in one job (one per sheet and operation is the norm): later ones are written in full.
MAX_TEMPLATES = 1000
_SHARED = ("op", "kind", "file", "sheet")


def _defaults() -> dict[str, Any]:
    out = {}
    for f in fields(Row):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


_DEFAULTS = _defaults()
_FIELDS = tuple(f.name for f in fields(Row) if f.name != "row_id")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def template_of(row: Row) -> Template:
    return row.op, row.kind, row.file, row.sheet, tuple(row.source)


class Templates:
    """A job's templates, as a list (what is stored) and by value (to find a row's)."""

    def __init__(self, items: list | None = None) -> None:
        self.items: list[Template] = [(t[0], t[1], t[2], t[3], tuple(t[4])) for t in items or ()]
        self.index = {t: i for i, t in enumerate(self.items)}

    def add(self, row: Row) -> bool:
        """Make ``row``'s template known; True if it is new (the stored list must be written again)."""
        t = template_of(row)
        if t in self.index or len(self.items) >= MAX_TEMPLATES:
            return False
        self.index[t] = len(self.items)
        self.items.append(t)
        return True

    def to_json(self) -> str:
        return json.dumps([list(t[:4]) + [list(t[4])] for t in self.items], ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | None) -> Templates:
        return cls(json.loads(raw) if raw else [])


def encode(row: Row, templates: Templates | None = None) -> str:
    """The stored record of ``row`` (see the module doc)."""
    out: dict[str, Any] = {}
    tid = templates.index.get(template_of(row)) if templates is not None else None
    if tid is not None:
        out["t"] = tid
    for name in _FIELDS:
        value = getattr(row, name)
        if tid is not None and name in _SHARED:
            continue
        if name == "source" and tid is not None:
            if value:
                out["source"] = list(value.values())
            continue
        if name in _DEFAULTS and value == _DEFAULTS[name]:
            continue
        if name == "state":
            value = value.value
        elif name == "error":
            value = value.as_dict()
        elif name == "place":
            value = asdict(value)
        out[name] = value
    return _dumps(out)


def decode(row_id: str, raw: str, templates: Templates | None = None) -> Row:
    """The ``Row`` of a stored record (compact or a plain ``Row`` dict)."""
    data = json.loads(raw)
    tid = data.pop("t", None)
    if tid is not None:
        if templates is None or tid >= len(templates.items):
            raise LookupError(f"row {row_id}: its job's template {tid} is missing")
        op, kind, file, sheet, headers = templates.items[tid]
        data.update(op=op, kind=kind, file=file, sheet=sheet)
        source = data.get("source")
        data["source"] = dict(zip(headers, source, strict=True)) if source else {}
    if "row_id" not in data:  # compact (a plain Row dict always has its id, and every field)
        data.setdefault("state", RowState.QUEUED.value)
        data.setdefault("place", None)  # (absent from a plain dict means "older than places" to Row.from_dict)
    data["row_id"] = row_id
    return Row.from_dict(data)


class Glance(NamedTuple):
    """What publishing needs of a stored row, read without building its ``Row`` (a fifth of the time)."""

    row_id: str
    op: str
    title: str
    state: RowState
    waiting_for_parent: bool  # as ``Row.waiting_for_parent``
    gen: int = 0  # the generation of its live message (from the job's ``gen`` hash: ``RowStore.glances``)


def glance(row_id: str, raw: str, templates: Templates | None = None) -> Glance:
    """``decode(...)``'s op, title, state and whether it waits for its parent."""
    data = json.loads(raw)
    tid = data.get("t")
    if tid is None or "row_id" in data:  # a plain Row dict
        row = decode(row_id, raw, templates)
        return Glance(row_id, row.op, row.title, row.state, row.waiting_for_parent)
    if templates is None or tid >= len(templates.items):
        raise LookupError(f"row {row_id}: its job's template {tid} is missing")
    state = RowState(data.get("state", RowState.QUEUED.value))
    waiting = state is RowState.QUEUED and data.get("parent") is not None and not data.get("released", False)
    return Glance(row_id, templates.items[tid][0], data["title"], state, waiting)
