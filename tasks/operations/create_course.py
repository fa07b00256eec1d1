"""Create Course: ``POST /api/v1/external/courses``, one row of a ``courses`` sheet.

Two objects: the call (``OPERATION``, what a worker runs) and the ``courses`` sheet (``SHEET``, what validation
reads; its ``draft`` builds the body the call sends). Not idempotent: the row is marked before the request
leaves, and a later attempt first looks for the course the earlier one may have made (``tasks.adopt``). The
ledger entry under the row's key makes a re-run skip the row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tasks import errors
from tasks.ledger import content_hash
from tasks.operations import cells
from tasks.operations.base import COURSE, CallContext, Operation, Skip, object_ids
from tasks.operations.sheets import Column, Draft, SheetKind
from tasks.paths import COURSES_PATH
from tasks.rows import Row

#: Spreadsheet column -> ``settings`` field.
_FLAGS = (("enable_drm", "enableDRM"), ("disable_qna", "disableQna"), ("disable_comments", "disableComments"))


def title_key(title: str) -> str:
    """The key of a course row without an external_id: its normalised title."""
    return "title:" + cells.normalised_title(title)


def course_ids(course: dict) -> dict:
    """The ids a Create Course (or a read-back of a course) answered; its modules are the placeholders a new
    course comes with (tasks.operations.tree)."""
    return {"course_id": course.get("_id") or course.get("id"), "first_chapter": course.get("firstChapter"),
            "second_chapter": course.get("secondChapter"), "placeholder_modules": object_ids(course.get("modules"))}


class CreateCourse(Operation):
    name = "create_course"
    task_name = "tagmango.create_course"
    kind = COURSE
    summary_key = "courses_to_create"
    summary_label = "courses to create"
    result_columns = ("course_id", "first_chapter", "second_chapter")
    creates = True
    listed = True

    def check_done(self, ctx: CallContext, row: Row) -> Skip | None:
        done = ctx.ledger.get(row.key)
        if done is None:
            return None
        note = "" if done["content"] == content_hash(row.body) else \
            " (the row's content has changed since; courses are not re-created or updated)"
        return Skip(done["ids"], f"already created by {done['job']} row {done['row']}{note}")

    def call(self, ctx: CallContext, row: Row) -> dict:
        ids = course_ids(ctx.call(lambda api: api.create_course(row.body)))
        if not ids["course_id"]:
            raise errors.ServerError("Create Course answered without a course id", status=200, maybe_committed=True)
        return ids

    def find_committed(self, ctx: CallContext, row: Row) -> dict | None:
        from tasks.adopt import find_created

        course = find_created(ctx.call, row.body, ctx.ledger, row.sent_at or 0.0, ctx.listings)
        return course_ids(course) if course is not None else None

    def request_path(self, row: Row) -> str:
        return COURSES_PATH


OPERATION = CreateCourse()


class CoursesSheet(SheetKind):
    sheet = "courses"
    sheet_names = ("course", "courses")
    operation = OPERATION
    columns = (
        Column("external_id", marker=True),
        #: An existing TagMango course this row is: picks one when several share the row's title.
        Column("course_id", cells.object_id),
        Column("title", required=True, marker=True),
        Column("description"),
        Column("mangoes", cells.object_ids, required=True, marker=True),
        Column("cover_image", cells.url),
        Column("validity_in_days", cells.whole_number_at_least_1),
        Column("mango_to_sell", cells.object_id),
        Column("mangoes_to_show_as_paid", cells.object_ids),
        Column("enable_drm", cells.boolean),
        Column("disable_qna", cells.boolean),
        Column("disable_comments", cells.boolean),
        Column("source_host"),  # the host the course_id belongs to (an export's); see importer.matching
    )

    def draft(self, v: dict[str, Any], present: set[str]) -> Draft:
        errors_, warnings = [], []
        title = v.get("title")
        if not title:
            errors_.append(("title", "", "title is required"))
        if "mangoes" not in v:
            errors_.append(("mangoes", "", "at least one mango id is required"))
        external_id = v.get("external_id")
        if external_id:
            key = str(external_id)
        else:
            key = title_key(title or "")
            if "external_id" in present:
                warnings.append(("external_id", "", "empty external_id: the normalised title is used as the key"))
        body: dict = {"title": title or "", "mangoes": v.get("mangoes", [])}
        if "description" in v:
            body["description"] = v["description"]
        if "cover_image" in v:
            body["coverImage"] = v["cover_image"]
        settings: dict = {}
        if "validity_in_days" in v:
            settings["validityInDays"] = v["validity_in_days"]
        locked = {}
        if "mango_to_sell" in v:
            locked["mangoToSell"] = v["mango_to_sell"]
        if "mangoes_to_show_as_paid" in v:
            locked["mangoesToShowAsPaid"] = v["mangoes_to_show_as_paid"]
        if locked:
            settings["showAsLocked"] = locked
        for column, field_name in _FLAGS:
            if column in v:
                settings[field_name] = v[column]
        if settings:
            body["settings"] = settings
        ids = {"course_id": v["course_id"]} if v.get("course_id") else {}
        return Draft(key=key, title=title or "", body=body, ids=ids, errors=errors_, warnings=warnings)

    def plain_keys(self, values: Callable[[str], Sequence[Any] | None], present: set[str], size: int) \
            -> list[str | None] | None:
        # As ``draft`` looks at them: a title and an external_id by their truth (an empty ``--set title=`` fills
        # cells with ""), mangoes by their presence.
        missing = (None,) * size
        titles, mangoes = values("title") or missing, values("mangoes") or missing
        if "external_id" in present:  # an empty external_id is warned about: that row is drafted
            ids = values("external_id") or missing
            return [k if k and t and m is not None else None for k, t, m in zip(ids, titles, mangoes, strict=True)]
        return [title_key(t) if t and m is not None else None for t, m in zip(titles, mangoes, strict=True)]

    def key_column(self, row: Row) -> str:
        return "title" if row.key.startswith("title:") else "external_id"


SHEET = CoursesSheet()
