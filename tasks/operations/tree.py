"""Where a module or a lesson of a course tree goes: into a placeholder TagMango made, or a new object.

Create Course answers with the course's ``modules`` (and ``firstChapter``/``secondChapter``): TagMango makes a
module with two chapters in every new course. A course imported from a curriculum must look exactly like the
file, so the file's first module takes over the first placeholder module (Update Module for its title), its
first lessons take over that module's placeholder chapters (Update Chapter), the rest are created, and
placeholder chapters the file does not fill are deleted (by the module row that takes the placeholder over).
Nothing here assumes how many placeholders there are: it reads what the parent row's result holds, so the
import also works if TagMango makes none, or more.

Rows of a tree are planned as ``create_module``/``create_chapter`` with ``params["place"]``; when the parent
hands over its result, ``place`` decides the operation (and the ids) the row will really run with.
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
    index = int(row.params["index"])
    if row.params["place"] == MODULE:
        placeholders = list(parent_result.get("placeholder_modules") or [])
        row.ids = {"course_id": _need(parent_result, "course_id"), "placeholder_modules": placeholders}
        if index < len(placeholders):
            row.op, row.ids["module_id"] = update_module.OPERATION.name, placeholders[index]
            row.params["takeover"] = True
        else:
            row.op, row.params["takeover"] = create_module.OPERATION.name, False
        return
    placeholders = list(parent_result.get("placeholder_chapters") or [])
    row.ids = {"course_id": _need(parent_result, "course_id"), "module_id": _need(parent_result, "module_id"),
               "placeholder_chapters": placeholders}
    if index < len(placeholders):
        row.op, row.ids["chapter_id"], row.params["takeover"] = update_chapter.OPERATION.name, placeholders[index], True
    else:
        row.op, row.params["takeover"] = create_chapter.OPERATION.name, False
