"""Update Chapter: ``PATCH /api/v1/external/chapters/{chapterId}``, one row of a ``chapters`` sheet.

Two objects: the call (``OPERATION``), which tree lessons and matching use too, and the ``chapters`` sheet
(``SHEET``). The chapter is named by its id, or by ``course_ref`` + ``chapter_slot`` (first/second: the two
chapters Create Course makes). A course of the same import is the row's parent: the row waits for it and takes
the slot's chapter id from its result. A course of an earlier import is found in the ledger when the row runs.
A partial update is idempotent; the ledger skips a chapter already updated with the same content.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tasks.operations import cells, create_course
from tasks.operations.base import CHAPTER, CallContext, PartialUpdate
from tasks.operations.sheets import Column, Draft, SheetKind
from tasks.paths import CHAPTERS_PATH
from tasks.rows import ErrorCode, Row, RowFailure

#: A chapter's fields: the chapters sheet's column -> the API field (Create Chapter's and Update Chapter's alike). A
#: curriculum names the first two ``chapter_title`` and ``chapter_description`` (tasks.operations.curriculum).
FIELDS = {"title": "title", "description": "description", "content": "content", "content_type": "contentType",
          "is_free": "isFree", "embedded_link": "embeddedLink", "additional_contents": "additionalContents"}


class UpdateChapter(PartialUpdate):
    name = "update_chapter"
    task_name = "tagmango.patch_chapter"  # its first name; kept, as Celery messages and Flower's history name it
    kind = CHAPTER
    summary_key = "chapters_to_update"
    summary_label = "chapters to update"
    needs = {"chapter_id": "{chapter_slot}_chapter"}
    result_columns = ("chapter_id",)
    compared_fields = tuple(FIELDS.values())

    def changes(self, body: dict, live: dict) -> dict[str, list]:
        diff = super().changes(body, live)
        if ("content" in diff) != ("contentType" in diff) and "content" in body and "contentType" in body:
            other = "contentType" if "content" in diff else "content"  # TagMango wants the two together
            diff[other] = [live.get(other), body[other]]
        return diff

    def resolve(self, ctx: CallContext, row: Row) -> RowFailure | None:
        if row.ids.get("chapter_id"):
            return None
        ref = row.params.get("course_ref") or ""
        course = ctx.ledger.get(ref) if ref else None
        chapter_id = (course or {}).get("ids", {}).get(f"{row.params.get('chapter_slot')}_chapter")
        if not chapter_id:
            name = ref.removeprefix("title:")
            return RowFailure(ErrorCode.COURSE_REF_NOT_FOUND,
                              f"course_ref {name!r} is not a course of this import or an earlier import to this host")
        row.ids["chapter_id"] = chapter_id
        return None

    def call(self, ctx: CallContext, row: Row) -> dict:
        ctx.call(lambda api: api.update_chapter(row.ids["chapter_id"], row.body))
        return {"chapter_id": row.ids["chapter_id"]}

    def request_path(self, row: Row) -> str:
        return f"{CHAPTERS_PATH}/{row.ids.get('chapter_id') or '(course not created)'}"

    def results(self, row: Row) -> dict[str, Any]:
        return {"chapter_id": (row.result or {}).get("chapter_id") or row.ids.get("chapter_id")}


OPERATION = UpdateChapter()


class ChaptersSheet(SheetKind):
    sheet = "chapters"
    sheet_names = ("chapter", "chapters")
    operation = OPERATION
    columns = (
        Column("chapter_id", cells.object_id, marker=True),
        Column("course_ref", marker=True),
        Column("chapter_slot", cells.chapter_slot, marker=True),
        Column("title"),
        Column("description"),
        Column("content", cells.url, marker=True),
        Column("content_type", cells.content_type, marker=True),
        Column("is_free", cells.boolean, marker=True),
        Column("embedded_link", cells.url, marker=True),
        Column("additional_contents", cells.urls_or_clear, marker=True),
    )
    classify_priority = 10  # its markers are specific; "title" alone means a course
    parent_op = create_course.OPERATION.name
    parent_column = "course_ref"

    def check_columns(self, present: set[str]) -> str | None:
        if "chapter_id" not in present and not {"course_ref", "chapter_slot"} <= present:
            return "a chapters sheet needs a chapter_id column, or course_ref and chapter_slot"
        return None

    def draft(self, v: dict[str, Any], present: set[str]) -> Draft:
        errors = []
        chapter_id, ref, slot = v.get("chapter_id"), v.get("course_ref"), v.get("chapter_slot")
        if chapter_id and (ref or slot):
            errors.append(("chapter_id", chapter_id, "give either chapter_id or course_ref + chapter_slot, not both"))
        elif not chapter_id and not (ref and slot):
            if ref or slot:
                missing = "chapter_slot" if ref else "course_ref"
                other = "course_ref" if ref else "chapter_slot"
                errors.append((missing, "", f"{missing} is needed together with {other}"))
            else:
                errors.append(("chapter_id", "", "which chapter? give chapter_id, or course_ref + chapter_slot"))
        if ("content" in v) != ("content_type" in v):
            have, lack = ("content", "content_type") if "content" in v else ("content_type", "content")
            errors.append((lack, "", f"{have} and {lack} must be given together"))
        body = {field_name: v[column] for column, field_name in FIELDS.items() if column in v}
        if not body:
            errors.append((None, "", "nothing to update: every field of this chapter row is empty"))
        key = f"chapter:{chapter_id}" if chapter_id else f"ref:{ref}:{slot}"
        title = v.get("title") or (f"{ref} / {slot}" if ref else str(chapter_id or ""))
        params = {k: val for k, val in (("course_ref", ref), ("chapter_slot", slot)) if val}
        ids = {"chapter_id": chapter_id} if chapter_id else {}
        return Draft(key=key, title=title, body=body, params=params, ids=ids, errors=errors)

    def plain_keys(self, values: Callable[[str], Sequence[Any] | None], present: set[str], size: int) \
            -> list[str | None] | None:
        """Rows named by their chapter_id alone, with something to update and content given with its type; rows
        named by course_ref + chapter_slot are drafted (and linked to their course)."""
        ids = values("chapter_id")
        if ids is None:
            return None
        missing = (None,) * size
        refs, slots = values("course_ref") or missing, values("chapter_slot") or missing
        fields = {column: values(column) for column in FIELDS}  # (each column's values made once)
        contents, types = fields["content"] or missing, fields["content_type"] or missing
        updates = [False] * size
        for cells_ in fields.values():
            if cells_ is not None:
                updates = [u or v is not None for u, v in zip(updates, cells_, strict=True)]
        return [f"chapter:{i}" if i is not None and r is None and s is None and (c is None) == (t is None) and u
                else None for i, r, s, c, t, u in zip(ids, refs, slots, contents, types, updates, strict=True)]

    def from_results(self, values: dict[str, Any]) -> dict[str, Any]:
        """A chapter named by course_ref + chapter_slot got its chapter_id in the results file: the reference is
        the input (the same key as the first run), the id the output."""
        if values.get("course_ref") and values.get("chapter_slot") and values.get("chapter_id"):
            return {k: v for k, v in values.items() if k != "chapter_id"}
        return values

    def key_column(self, row: Row) -> str:
        return "chapter_id"

    def parent_key(self, row: Row) -> str | None:
        return None if row.ids.get("chapter_id") else row.params.get("course_ref")

    def find_parent(self, row: Row, candidates: dict[str, Row]) -> Row | None:
        ref = self.parent_key(row)
        if not ref:
            return None
        return candidates.get(ref) or candidates.get(create_course.title_key(ref))

    def link(self, row: Row, parent: Row) -> None:
        row.parent = parent.row_id
        row.params["course_ref"] = parent.key
        row.key = f"ref:{parent.key}:{row.params['chapter_slot']}"


SHEET = ChaptersSheet()
