"""Delete Chapter: ``DELETE /api/v1/external/chapters/{chapterId}`` (replace mode: lessons the file no longer has).

Deleting is permanent in TagMango (the chapter's QnA and assignment go with it). A chapter already gone
(404 ``CHAPTER_NOT_FOUND``, e.g. deleted by an earlier attempt whose answer was lost) counts as deleted.
"""

from __future__ import annotations

from tasks import errors
from tasks.operations.base import CHAPTER, DELETED, CallContext, Operation
from tasks.paths import CHAPTERS_PATH
from tasks.rows import Row


def delete_chapter(ctx: CallContext, chapter_id: str) -> None:
    """Delete one chapter; one already gone (404) counts as deleted. Other operations delete chapters with it too
    (the placeholders a module does not fill, the lessons of a module kept)."""
    try:
        ctx.call(lambda api: api.delete_chapter(chapter_id))
    except errors.PermanentApiError as exc:
        if exc.status != 404:
            raise


class DeleteChapter(Operation):
    name = "delete_chapter"
    task_name = "tagmango.delete_chapter"
    kind = CHAPTER
    summary_key = "chapters_to_delete"
    summary_label = "chapters to delete"
    verb = DELETED
    result_columns = ("chapter_id",)
    can_be_parent = False

    def call(self, ctx: CallContext, row: Row) -> dict:
        delete_chapter(ctx, row.ids["chapter_id"])
        return {"chapter_id": row.ids["chapter_id"], "deleted": True}

    def request_path(self, row: Row) -> str:
        return f"{CHAPTERS_PATH}/{row.ids.get('chapter_id')}"


OPERATION = DeleteChapter()
