"""Update Module: ``PATCH /api/v1/external/modules/{moduleId}`` (a module's title).

Idempotent. When a curriculum's module takes over the placeholder module of a new course
(``place.takeover``), the answer lists the placeholder's chapters: the first ones are handed to the
module's lessons to take over, and those the file does not fill are deleted here, so that no placeholder is
left (a chapter already gone, 404, counts as deleted).
"""

from __future__ import annotations

from tasks.operations.base import MODULE, CallContext, PartialUpdate, object_ids
from tasks.operations.delete_chapter import delete_chapter
from tasks.paths import MODULES_PATH
from tasks.rows import Row


class UpdateModule(PartialUpdate):
    name = "update_module"
    task_name = "tagmango.update_module"
    kind = MODULE
    summary_key = "modules_to_update"
    summary_label = "modules to update"
    result_columns = ("module_id",)
    compared_fields = ("title",)

    def call(self, ctx: CallContext, row: Row) -> dict:
        module_id = row.ids["module_id"]
        module = ctx.call(lambda api: api.update_module(module_id, row.body))
        result: dict = {"module_id": module_id}
        if row.place is not None and row.place.takeover:
            chapters = object_ids(module.get("chapters"))
            lessons = row.place.lessons
            for chapter_id in chapters[lessons:]:
                delete_chapter(ctx, chapter_id)  # already gone (404): deleted by an earlier attempt of this row
            result.update(placeholder_chapters=chapters[:lessons], deleted_placeholders=chapters[lessons:])
        return result

    def request_path(self, row: Row) -> str:
        return f"{MODULES_PATH}/{row.ids.get('module_id') or '(module not known yet)'}"


OPERATION = UpdateModule()
