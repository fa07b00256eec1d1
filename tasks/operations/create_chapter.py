"""Create Chapter: ``POST /api/v1/external/modules/{moduleId}/chapters``, one lesson of a curriculum.

TagMango requires a title and a description. Not idempotent: the lessons of a module are created one at a
time in file order, so after an attempt that may have committed, the chapter it made can only be the
module's last one; the module is read back (an empty Update Module answers its ``chapters``) and the last
chapter is adopted if no row owns it yet and its title is ours. Planned rows may run as Update Chapter
instead (a placeholder taken over, see ``tasks.operations.tree``).
"""

from __future__ import annotations

from tasks.operations.base import CHAPTER, CallContext, Operation, adopt_last_child
from tasks.paths import MODULES_PATH
from tasks.rows import Row


class CreateChapter(Operation):
    name = "create_chapter"
    task_name = "tagmango.create_chapter"
    kind = CHAPTER
    summary_key = "chapters_to_create"
    summary_label = "chapters to create"
    result_columns = ("chapter_id",)
    creates = True

    def call(self, ctx: CallContext, row: Row) -> dict:
        answer = ctx.call(lambda api: api.create_chapter(row.ids["module_id"], row.body))
        return {"chapter_id": self.id_of(answer, "Create Chapter")}

    def find_committed(self, ctx: CallContext, row: Row) -> dict | None:
        module_id = row.ids["module_id"]
        chapter_id = adopt_last_child(ctx, lambda api: api.update_module(module_id, {}),
                                      lambda api, last: api.update_chapter(last, {}), "chapters", row.body["title"])
        return None if chapter_id is None else {"chapter_id": chapter_id}

    def request_path(self, row: Row) -> str:
        return f"{MODULES_PATH}/{row.ids.get('module_id') or '(module not created)'}/chapters"


OPERATION = CreateChapter()
