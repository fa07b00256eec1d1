"""Cell rules: each turns a cell's text into the value the API wants, or raises CellError with why.

Pure functions, one per kind of cell; the operations (tasks.operations) name them for their columns.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
CONTENT_TYPES = ("video", "audio", "image", "pdf", "file")
_SPLIT = re.compile(r"[,;\s]+")
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
CLEAR = {"[]", "clear"}


class CellError(ValueError):
    """The cell breaks its rule; the message is the plain-English reason."""


def text(value: str) -> str:
    return value


def object_id(value: str) -> str:
    if not OBJECT_ID.match(value):
        raise CellError("must be a 24-character hexadecimal TagMango id")
    return value.lower()


def object_ids(value: str) -> list[str]:
    parts = [p for p in _SPLIT.split(value) if p]
    bad = [p for p in parts if not OBJECT_ID.match(p)]
    if bad:
        raise CellError(f"{bad[0]!r} is not a 24-character hexadecimal mango id"
                        + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    if not parts:
        raise CellError("needs at least one mango id")
    return list(dict.fromkeys(p.lower() for p in parts))


def url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or " " in value:
        raise CellError("must be an http(s) URL")
    return value


def urls_or_clear(value: str) -> list[str]:
    if value.casefold() in CLEAR:
        return []
    if value.startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            raise CellError("looks like a list but is not valid JSON; separate URLs with commas instead") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise CellError("must be a list of URLs")
    else:
        items = [p for p in re.split(r"[,;\s]+", value) if p]
    return [url(i) for i in items]


def boolean(value: str) -> bool:
    v = value.casefold()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise CellError("must be a yes/no value (true/false, yes/no, y/n, 1/0)")


def whole_number_at_least_1(value: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise CellError("must be a whole number of days") from None
    if not number.is_integer() or number < 1:
        raise CellError("must be a whole number of days, 1 or more")
    return int(number)


def content_type(value: str) -> str:
    v = value.casefold()
    if v not in CONTENT_TYPES:
        raise CellError(f"unknown content type; allowed: {', '.join(CONTENT_TYPES)}")
    return v


def chapter_slot(value: str) -> str:
    v = value.casefold()
    if v in ("first", "1", "firstchapter"):
        return "first"
    if v in ("second", "2", "secondchapter"):
        return "second"
    raise CellError("must be 'first' or 'second' (the two chapters Create Course makes)")


def normalised_title(value: str) -> str:
    return " ".join(value.split()).casefold()


def position(value: str) -> int:
    """A 1-based position (of a module in its course, a lesson in its module)."""
    try:
        number = float(value)
    except ValueError:
        raise CellError("must be a whole number, 1 or more (the position in file order)") from None
    if not number.is_integer() or number < 1:
        raise CellError("must be a whole number, 1 or more (the position in file order)")
    return int(number)
