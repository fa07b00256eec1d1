"""Delete Module: ``DELETE /api/v1/external/modules/{moduleId}`` (replace mode: a module the file no longer has).

TagMango does not document it (reference 5.12). Where it answers, the module goes and its chapters with it, in
one request; a 404 ``MODULE_NOT_FOUND`` (gone already, e.g. deleted by an earlier attempt whose answer was lost)
counts as deleted. A TagMango without it (a 405, or a 404 that is not its JSON error) keeps the module: its
chapters, as matching read them (``ids["chapter_ids"]``), are deleted as Delete Chapter does, and the row ends
skipped, outcome ``kept``, saying why; that is no failure. That answer is remembered for the TagMango (API URL and
host, ``Ledger.lacks``) for an hour: its other module rows delete their lessons without asking again.
"""

from __future__ import annotations

from tasks import errors
from tasks.operations.base import DELETED, MODULE, CallContext, Operation, Skip
from tasks.operations.delete_chapter import delete_chapter
from tasks.paths import MODULES_PATH
from tasks.rows import Row


class DeleteModule(Operation):
    name = "delete_module"
    task_name = "tagmango.delete_module"
    kind = MODULE
    summary_key = "modules_to_delete"
    summary_label = "modules to delete"
    verb = DELETED
    plan_note = "if TagMango has no Delete Module, its lessons are deleted and the module kept"
    result_columns = ("module_id",)
    can_be_parent = False

    def call(self, ctx: CallContext, row: Row) -> dict | Skip:
        module_id = row.ids["module_id"]
        deleted = False
        if not ctx.ledger.lacks(self.name):
            try:
                deleted = ctx.call(lambda api: api.delete_module(module_id))
            except errors.PermanentApiError as exc:
                if exc.error_code != "MODULE_NOT_FOUND":
                    raise
                deleted = True
            if not deleted:
                ctx.ledger.note_lacking(self.name)
        if deleted:
            return {"module_id": module_id, "deleted": True}
        chapters = list(row.ids.get("chapter_ids") or [])
        for chapter_id in chapters:
            delete_chapter(ctx, chapter_id)
        return Skip({**row.ids, "deleted_chapters": chapters}, f"TagMango has no Delete Module (it does not document "
                    f"one): the module's {len(chapters)} lesson(s) were deleted and the module kept", outcome="kept")

    def request_path(self, row: Row) -> str:
        return f"{MODULES_PATH}/{row.ids.get('module_id')}"


OPERATION = DeleteModule()
