"""Create Module: ``POST /api/v1/external/courses/{courseId}/modules``, one module of a curriculum.

Not idempotent. The modules of a course are created one at a time in file order (each waits for the one
before it), so after an attempt that may have committed, the module it made can only be the course's last
one: the course is read back (an empty Update Course answers its ``modules``) and the last module is adopted
if no row owns it yet and its title is ours. Planned rows may run as Update Module instead (a placeholder
taken over, see ``tasks.operations.tree``).
"""

from __future__ import annotations

from tasks.client import COURSES_PATH
from tasks.operations.base import MODULE, CallContext, Operation, object_ids
from tasks.rows import Row


class CreateModule(Operation):
    name = "create_module"
    task_name = "tagmango.create_module"
    kind = MODULE
    summary_key = "modules_to_create"
    summary_label = "modules to create"
    result_columns = ("module_id",)
    creates = True

    def call(self, ctx: CallContext, row: Row) -> dict:
        module = ctx.call(lambda api: api.create_module(row.ids["course_id"], row.body))
        return {"module_id": self.id_of(module, "Create Module"), "placeholder_chapters": []}

    def find_committed(self, ctx: CallContext, row: Row) -> dict | None:
        course_id = row.ids["course_id"]
        modules = object_ids(ctx.call(lambda api: api.update_course(course_id, {})).get("modules"))
        if not modules or ctx.ledger.is_claimed(modules[-1]):
            return None
        last = modules[-1]
        module = ctx.call(lambda api: api.update_module(last, {}))
        if str(module.get("title", "")).strip() != row.body["title"].strip() or not ctx.ledger.claim(last):
            return None
        return {"module_id": last, "placeholder_chapters": []}

    def request_path(self, row: Row) -> str:
        return f"{COURSES_PATH}/{row.ids.get('course_id') or '(course not created)'}/modules"


OPERATION = CreateModule()
