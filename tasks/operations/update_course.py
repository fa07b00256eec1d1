"""Update Course: ``PATCH /api/v1/external/courses/{courseId}`` (merge and update modes: what changed).

A partial update: only the fields sent change (the body holds just the changed ones), so it is idempotent.
Toggling ``settings.enableDRM`` re-flags the course's video chapters, as TagMango documents.
"""

from __future__ import annotations

from tasks.operations.base import CallContext, PartialUpdate
from tasks.rows import Row

PATH = "/api/v1/external/courses/{course_id}"


class UpdateCourse(PartialUpdate):
    name = "update_course"
    task_name = "tagmango.update_course"
    kind = "course"
    summary_key = "courses_to_update"
    summary_label = "courses to update"
    result_columns = ("course_id",)
    listed = True

    def call(self, ctx: CallContext, row: Row) -> dict:
        ctx.call(lambda api: api.update_course(row.ids["course_id"], row.body))
        return {"course_id": row.ids["course_id"], "placeholder_modules": []}

    def request_path(self, row: Row) -> str:
        return PATH.format(course_id=row.ids.get("course_id"))


OPERATION = UpdateCourse()
