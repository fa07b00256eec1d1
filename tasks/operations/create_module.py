"""Create Module: ``POST /api/v1/external/courses/{courseId}/modules``, one module of a curriculum.

Not idempotent. The modules of a course are created one at a time in file order (each waits for the one
before it), so after an attempt that may have committed, the module it made can only be the course's last
one: the course is read back (an empty Update Course answers its ``modules``) and the last module is adopted
if no row owns it yet and its title is ours. Planned rows may run as Update Module instead (a placeholder
taken over, see ``tasks.operations.tree``).
"""

from __future__ import annotations

from tasks.operations.base import MODULE, CallContext, Operation, adopt_last_child
from tasks.paths import COURSES_PATH
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
        module_id = adopt_last_child(ctx, lambda api: api.update_course(course_id, {}),
                                     lambda api, last: api.update_module(last, {}), "modules", row.body["title"])
        return None if module_id is None else {"module_id": module_id, "placeholder_chapters": []}

    def request_path(self, row: Row) -> str:
        return f"{COURSES_PATH}/{row.ids.get('course_id') or '(course not created)'}/modules"


OPERATION = CreateModule()
