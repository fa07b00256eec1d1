"""How headers are matched to a sheet kind's columns, and how a sheet's kind is told.

Headers match case-insensitively ignoring spaces, ``_`` and ``-``, so ``cover_image``, ``Cover Image`` and
the API's own ``coverImage`` are one column. The columns themselves are declared by the sheet kinds
(``tasks.operations``).
"""

from __future__ import annotations

import difflib
import re

from tasks import operations
from tasks.operations import SheetKind

#: Extra spellings beyond the normalised canonical name (the API's own field names mostly normalise alike).
ALIASES = {"courseexternalid": "course_ref", "slot": "chapter_slot", "mango": "mangoes",
           "mangoids": "mangoes", "validity": "validity_in_days", "drm": "enable_drm", "free": "is_free",
           "coverimageurl": "cover_image", "contenturl": "content", "id": "external_id", "externalkey": "external_id",
           "coursekey": "course_ref", "sectiontitle": "module_title", "sectionposition": "module_position",
           "sectionname": "module_title", "modulename": "module_title", "lessontitle": "chapter_title",
           "lessonname": "chapter_title", "lessonposition": "chapter_position",
           "lessondescription": "chapter_description", "coursename": "course_title"}

_STRIP = re.compile(r"[\s_\-]+")


def normalise_header(text: str) -> str:
    return _STRIP.sub("", str(text)).casefold()


def canonical_lookup(sheet_kind: SheetKind) -> dict[str, str]:
    """Normalised header -> the sheet kind's column name."""
    names = {c.name for c in sheet_kind.columns}
    table = {k: v for k, v in ALIASES.items() if v in names}
    table.update({normalise_header(n): n for n in names})  # a column's own name wins over an alias
    return table


def known_headers() -> frozenset[str]:
    """Every column name of every kind of sheet, normalised (with aliases): what tells a header row."""
    return frozenset(name for kind in operations.sheet_kinds() for name in canonical_lookup(kind))


def kind_from_sheet_name(name: str) -> SheetKind | None:
    return operations.for_sheet_name(normalise_header(name))


def kind_from_headers(headers: list[str], mapped: dict[str, str]) -> SheetKind | None:
    """Tell a sheet's kind by the columns present (after mapping): the most specific markers."""
    present = {normalise_header(mapped.get(h, h)) for h in headers}
    candidates = sorted(operations.sheet_kinds(), key=lambda sheet_kind: -sheet_kind.classify_priority)
    for sheet_kind in candidates:
        lookup = canonical_lookup(sheet_kind)
        if any(lookup.get(p) in sheet_kind.markers() for p in present):
            return sheet_kind
    return None


def closest(name: str, headers: list[str]) -> str | None:
    candidates = {normalise_header(h): h for h in headers}
    match = difflib.get_close_matches(normalise_header(name), list(candidates), n=1, cutoff=0.6)
    return candidates[match[0]] if match else None
