"""Update Course: ``PATCH /api/v1/external/courses/{courseId}`` (merge and update modes: what changed).

A partial update: only the fields sent change (the body holds just the changed ones), so it is idempotent.
Toggling ``settings.enableDRM`` re-flags the course's video chapters, as TagMango documents.
"""

from __future__ import annotations

from tasks.operations.base import COURSE, CallContext, PartialUpdate, object_ids, same_value
from tasks.paths import COURSES_PATH
from tasks.rows import Row


class UpdateCourse(PartialUpdate):
    name = "update_course"
    task_name = "tagmango.update_course"
    kind = COURSE
    summary_key = "courses_to_update"
    summary_label = "courses to update"
    result_columns = ("course_id",)
    listed = True
    #: Besides these, ``mangoes`` (as a set) and each ``settings`` key (``showAsLocked`` key by key) are compared.
    compared_fields = ("title", "description", "coverImage")

    def changes(self, body: dict, live: dict) -> dict[str, list]:
        diff = super().changes(body, live)
        live_mangoes = sorted(object_ids(live.get("mangoes")))
        if "mangoes" in body and sorted(body["mangoes"]) != live_mangoes:
            diff["mangoes"] = [live_mangoes, body["mangoes"]]
        live_settings = live.get("settings") or {}
        for key, value in (body.get("settings") or {}).items():
            old = live_settings.get(key)
            if key == "showAsLocked":
                old = old or {}
                changed = {k: v for k, v in value.items() if not same_value(v, old.get(k))}
                if changed:
                    diff["settings.showAsLocked"] = [{k: old.get(k) for k in changed}, changed]
            elif not same_value(value, old):
                diff[f"settings.{key}"] = [old, value]
        return diff

    def call(self, ctx: CallContext, row: Row) -> dict:
        ctx.call(lambda api: api.update_course(row.ids["course_id"], row.body))
        return {"course_id": row.ids["course_id"], "placeholder_modules": []}

    def request_path(self, row: Row) -> str:
        return f"{COURSES_PATH}/{row.ids.get('course_id')}"


OPERATION = UpdateCourse()
