"""``export``: a host's courses, modules and lessons, in order, as the curriculum workbook ``run`` reads (issue 22).

Reads only what TagMango documents, through the credential's door like matching (``LiveCatalog``): Get Courses
(paged; filtered by mangoes with ``--mangoes``) for the list, an empty Update Course per course (its fields and
``modules`` in order), an empty Update Module per module (its ``chapters`` in order), an empty Update Chapter per
chapter (its fields). Reads of one level go out together (a thread pool), so the export runs at the rate limit
rather than at TagMango's latency; they share the key's budget with any import, and a 429 is waited out.

One row per lesson with the course's and the module's columns on every row, the ids (``course_id``,
``module_id``, ``chapter_id``), the positions and every field the reads return; a module without lessons is a
row without lesson columns; a course without modules is a row of the ``courses`` sheet (in a CSV, a curriculum
row with only course columns). ``source_host`` names the host the ids belong to: imported into another host,
matching sees them as foreign and does not send them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from importer.matching.live import LiveCatalog
from tasks.operations import CHAPTER, COURSE, MODULE, curriculum
from tasks.operations.base import object_ids

#: Reads in flight at once: enough to fill the budget at TagMango's latency (the limiter spaces them).
READ_THREADS = 16
SOURCE_HOST = "source_host"
COURSE_FIELDS = ["course_ref", "course_id", "course_title", "course_description", "mangoes", "cover_image",
                 "validity_in_days", "mango_to_sell", "mangoes_to_show_as_paid", "enable_drm", "disable_qna",
                 "disable_comments"]
CURRICULUM_COLUMNS = [*COURSE_FIELDS, "module_id", "module_position", "module_title", "chapter_id",
                      "chapter_position", "chapter_title", "chapter_description", "content", "content_type",
                      "is_free", "embedded_link", "additional_contents", SOURCE_HOST]
#: The courses sheet's names for the course columns (``curriculum.COURSE_COLUMNS`` the other way round).
COURSES_COLUMNS = ["external_id", *(curriculum.COURSE_COLUMNS[c] for c in COURSE_FIELDS[1:]), SOURCE_HOST]
_CHAPTER = {"chapter_title": "title", "chapter_description": "description", "content": "content",
            "content_type": "contentType", "is_free": "isFree", "embedded_link": "embeddedLink",
            "additional_contents": "additionalContents"}


#: What the reads return that cannot be imported goes into read-only columns ``tagmango_<object>_<field>``
#: (``tagmango_course_isPublished``, ``tagmango_chapter_totalDuration``...), which reading ignores
#: (importer.ingest.results_input); ids of other objects and the tree's own lists are left out.
READ_ONLY_PREFIX = "tagmango_"
_NOT_SHOWN = {"_id", "id", "_host", "_how", "modules", "chapters", "creator", COURSE, MODULE}  # a chapter's parents
_IMPORTED = {"title", "description", "mangoes", "coverImage", "settings", *_CHAPTER.values()}


def read_only(obj: dict, what: str) -> dict:
    """The object's fields that no column imports, as read-only columns."""
    return {f"{READ_ONLY_PREFIX}{what}_{k}": _text(v if not isinstance(v, dict) else json.dumps(v, default=str))
            for k, v in obj.items() if k not in _NOT_SHOWN and k not in _IMPORTED}


class NotFound(Exception):
    """A ``--course-id`` that is not a course of this host."""


@dataclass
class Exported:
    lessons: list[dict] = field(default_factory=list)  # curriculum rows
    read_only: list[str] = field(default_factory=list)  # the read-only columns, in the order first seen
    bare_courses: list[dict] = field(default_factory=list)  # courses without modules: courses-sheet rows
    courses: int = 0
    modules: int = 0
    chapters: int = 0

    def sheets(self) -> list[tuple[str, list[str], list[dict]]]:
        """(name, columns, rows) of the workbook: the curriculum, and a courses sheet if a course has no modules."""
        out = [("curriculum", [*CURRICULUM_COLUMNS, *self.read_only], self.lessons)]
        if self.bare_courses:
            extra = [c for c in self.read_only if c.startswith(f"{READ_ONLY_PREFIX}{COURSE}_")]
            out.append(("courses", [*COURSES_COLUMNS, *extra], self.bare_courses))
        return out

    def table(self) -> list[dict]:
        """Every row in one table (a CSV): a course without modules is a curriculum row with its course columns."""
        rows = list(self.lessons)
        for course in self.bare_courses:
            rows.append({**course, **{c: course.get(curriculum.COURSE_COLUMNS.get(c, c)) for c in COURSE_FIELDS[1:]},
                         "course_ref": course["external_id"]})
        return rows


def _text(value: Any) -> str | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, list):
        return json.dumps([str(v) for v in value]) if any("," in str(v) for v in value) else ",".join(map(str, value))
    return str(value)


def course_columns(course: dict, host: str) -> dict:
    settings = course.get("settings") or {}
    locked = settings.get("showAsLocked") or {}
    return {"course_ref": course["_id"], "course_id": course["_id"], "course_title": _text(course.get("title")),
            "course_description": _text(course.get("description")),
            "mangoes": _text(object_ids(course.get("mangoes"))), "cover_image": _text(course.get("coverImage")),
            "validity_in_days": _text(settings.get("validityInDays")),
            "mango_to_sell": _text(object_ids([locked["mangoToSell"]])[0] if locked.get("mangoToSell") else None),
            "mangoes_to_show_as_paid": _text(object_ids(locked.get("mangoesToShowAsPaid"))),
            "enable_drm": _text(settings.get("enableDRM")), "disable_qna": _text(settings.get("disableQna")),
            "disable_comments": _text(settings.get("disableComments")), SOURCE_HOST: host}


def chapter_columns(chapter: dict) -> dict:
    out = {column: _text(chapter.get(name)) for column, name in _CHAPTER.items()}
    if not (out["content"] and out["content_type"]):  # TagMango takes them together only
        out["content"] = out["content_type"] = None
    return out


def read_catalog(catalog: LiveCatalog, *, mangoes: list[str] | None = None, course_ids: Iterable[str] = (),
                 threads: int = READ_THREADS, on_level: Callable[[str, int], None] | None = None) -> Exported:
    """The host's courses (all, those under ``mangoes``, or ``course_ids``) with their trees; raises NotFound for a
    ``course_ids`` entry the host does not have."""
    host = catalog.door.cred.host
    said = on_level or (lambda _what, _n: None)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        wanted = list(dict.fromkeys(course_ids))
        if not wanted:
            listed = catalog.courses(list(mangoes or []))
            wanted = [c["_id"] for c in reversed(listed)]  # Get Courses lists the newest first
        said("courses", len(wanted))
        courses = list(pool.map(catalog.course, wanted))
        missing = [cid for cid, c in zip(wanted, courses, strict=True) if c is None]
        if missing and course_ids:
            raise NotFound(f"course {missing[0]} is not a course of {host}")
        courses = [{**c, "_id": cid} for cid, c in zip(wanted, courses, strict=True) if c is not None]
        courses.sort(key=lambda c: str(c.get("createdAt") or ""))  # creation order (a stable sort)
        module_ids = [m for c in courses for m in object_ids(c.get("modules"))]
        said("modules", len(module_ids))
        modules = dict(zip(module_ids, pool.map(catalog.module, module_ids), strict=True))
        chapter_ids = [ch for m in modules.values() if m for ch in object_ids(m.get("chapters"))]
        said("lessons", len(chapter_ids))
        chapters = dict(zip(chapter_ids, pool.map(catalog.chapter, chapter_ids), strict=True))
    out = Exported(courses=len(courses), modules=len(modules), chapters=len(chapters))
    for course in courses:
        head = {**course_columns(course, host), **read_only(course, COURSE)}
        ids = object_ids(course.get("modules"))
        if not ids:
            out.bare_courses.append({**head, "external_id": head["course_ref"],
                                     **{curriculum.COURSE_COLUMNS[c]: head[c] for c in COURSE_FIELDS[1:]}})
            continue
        for m_pos, module_id in enumerate(ids, start=1):
            module = modules.get(module_id) or {}
            row = {**head, "module_id": module_id, "module_position": m_pos, "module_title": _text(module.get("title")),
                   **read_only(module, MODULE)}
            lessons = [c for c in object_ids(module.get("chapters")) if chapters.get(c) is not None]
            if not lessons:
                out.lessons.append(row)
            for c_pos, chapter_id in enumerate(lessons, start=1):
                chapter = chapters[chapter_id]
                out.lessons.append({**row, "chapter_id": chapter_id, "chapter_position": c_pos,
                                    **chapter_columns(chapter), **read_only(chapter, CHAPTER)})
    known = set(CURRICULUM_COLUMNS) | set(COURSES_COLUMNS)
    out.read_only = list(dict.fromkeys(c for r in [*out.lessons, *out.bare_courses] for c in r if c not in known))
    return out
