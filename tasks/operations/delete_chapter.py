"""Delete Chapter: ``DELETE /api/v1/external/chapters/{chapterId}`` (replace mode: lessons the file no longer has).

Deleting is permanent in TagMango (the chapter's QnA and assignment go with it). A chapter already gone
(404 ``CHAPTER_NOT_FOUND``, e.g. deleted by an earlier attempt whose answer was lost) counts as deleted.
"""

from __future__ import annotations

from tasks import errors
from tasks.operations.base import CallContext, Operation
from tasks.rows import Row

PATH = "/api/v1/external/chapters/{chapter_id}"


class DeleteChapter(Operation):
    name = "delete_chapter"
    task_name = "tagmango.delete_chapter"
    kind = "chapter"
    summary_key = "chapters_to_delete"
    summary_label = "chapters to delete"
    verb = "deleted"
    result_columns = ("chapter_id",)
    can_be_parent = False

    def call(self, ctx: CallContext, row: Row) -> dict:
        chapter_id = row.ids["chapter_id"]
        try:
            ctx.call(lambda api: api.delete_chapter(chapter_id))
        except errors.PermanentApiError as exc:
            if exc.status != 404:
                raise
        return {"chapter_id": chapter_id, "deleted": True}

    def request_path(self, row: Row) -> str:
        return PATH.format(chapter_id=row.ids.get("chapter_id"))


OPERATION = DeleteChapter()
