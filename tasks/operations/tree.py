"""Where a module or a lesson of a course tree goes: into a placeholder TagMango made, or a new object.

Create Course answers with the course's ``modules`` (and ``firstChapter``/``secondChapter``): TagMango makes a
module with two chapters in every new course. A course imported from a curriculum must look exactly like the
file, so the file's first module takes over the first placeholder module (Update Module for its title), its
first lessons take over that module's placeholder chapters (Update Chapter), the rest are created, and
placeholder chapters the file does not fill are deleted (by the module row that takes the placeholder over).
Nothing here assumes how many placeholders there are: it reads what the parent row's result holds, so the
import also works if TagMango makes none, or more.

Rows of a tree are planned as creates with a ``Place`` (``by_parent``); when the parent hands over its result,
``place`` decides the operation (and the ids) the row will really run with.

Modules of a course are created one after another, and so are the lessons of a module (each row waits for
the one before it): TagMango appends and has no reorder endpoint, so file order is creation order.
"""

from __future__ import annotations

from tasks.operations import create_chapter, create_module, update_chapter, update_module
from tasks.operations.base import MODULE, MissingParentId
from tasks.rows import Row


def _need(parent_result: dict, name: str) -> str:
    value = parent_result.get(name)
    if not value:
        raise MissingParentId(f"its parent row finished without a {name.replace('_', ' ')}")
    return value


def place(row: Row, parent_result: dict) -> None:
    """Set the row's operation and ids from its parent's result (a course, a module or the lesson before)."""
    if row.kind == MODULE:
        placeholders = list(parent_result.get("placeholder_modules") or [])
        row.ids = {"course_id": _need(parent_result, "course_id"), "placeholder_modules": placeholders}
        update, create, id_field = update_module.OPERATION, create_module.OPERATION, "module_id"
    else:
        placeholders = list(parent_result.get("placeholder_chapters") or [])
        row.ids = {"course_id": _need(parent_result, "course_id"), "module_id": _need(parent_result, "module_id"),
                   "placeholder_chapters": placeholders}
        update, create, id_field = update_chapter.OPERATION, create_chapter.OPERATION, "chapter_id"
    row.place.takeover = row.place.index < len(placeholders)
    if row.place.takeover:
        row.op, row.ids[id_field] = update.name, placeholders[row.place.index]
    else:
        row.op = create.name
