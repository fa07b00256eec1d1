"""The columns a sheet may have, how headers are matched to them, and how a sheet's kind is told.

Headers match case-insensitively ignoring spaces, ``_`` and ``-``, so ``cover_image``,
``Cover Image`` and the API's own ``coverImage`` are one column.
"""

from __future__ import annotations

import difflib
import re

COURSE = "courses"
CHAPTER = "chapters"

COURSE_COLUMNS = ("external_id", "title", "description", "mangoes", "cover_image", "validity_in_days",
                  "mango_to_sell", "mangoes_to_show_as_paid", "enable_drm", "disable_qna", "disable_comments")
CHAPTER_COLUMNS = ("chapter_id", "course_ref", "chapter_slot", "title", "description", "content", "content_type",
                   "is_free", "embedded_link", "additional_contents")
REQUIRED = {COURSE: ("title", "mangoes"), CHAPTER: ()}
#: Columns whose presence makes a sheet a chapters sheet.
CHAPTER_MARKERS = {"chapter_id", "course_ref", "chapter_slot", "content", "content_type", "is_free",
                   "embedded_link", "additional_contents"}
#: Extra spellings beyond the normalised canonical name (the API's own field names mostly normalise alike).
ALIASES = {"courseid": "course_ref", "courseexternalid": "course_ref", "slot": "chapter_slot", "mango": "mangoes",
           "mangoids": "mangoes", "validity": "validity_in_days", "drm": "enable_drm", "free": "is_free",
           "coverimageurl": "cover_image", "contenturl": "content", "id": "external_id", "externalkey": "external_id"}

_STRIP = re.compile(r"[\s_\-]+")


def normalise_header(text: str) -> str:
    return _STRIP.sub("", str(text)).casefold()


def canonical_lookup(kind: str) -> dict[str, str]:
    names = COURSE_COLUMNS if kind == COURSE else CHAPTER_COLUMNS
    table = {normalise_header(n): n for n in names}
    table.update({k: v for k, v in ALIASES.items() if v in names})
    return table


def sheet_kind_from_name(name: str) -> str | None:
    n = normalise_header(name)
    if n in ("course", "courses"):
        return COURSE
    if n in ("chapter", "chapters"):
        return CHAPTER
    return None


def kind_from_headers(headers: list[str], mapped: dict[str, str]) -> str | None:
    """Tell courses from chapters by the columns present (after mapping)."""
    present = {normalise_header(mapped.get(h, h)) for h in headers}
    chapter_table = canonical_lookup(CHAPTER)
    if any(chapter_table.get(p) in CHAPTER_MARKERS for p in present):
        return CHAPTER
    course_table = canonical_lookup(COURSE)
    if any(course_table.get(p) in ("title", "mangoes", "external_id") for p in present):
        return COURSE
    return None


def closest(name: str, headers: list[str]) -> str | None:
    candidates = {normalise_header(h): h for h in headers}
    match = difflib.get_close_matches(normalise_header(name), list(candidates), n=1, cutoff=0.6)
    return candidates[match[0]] if match else None
