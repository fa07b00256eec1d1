"""Where a module or a lesson of a course tree goes, decided when its parent hands over its result: into a
placeholder TagMango made (Create Course answers with the course's ``modules``: one with two chapters), taken over
with an Update, or a new object. So a new course looks exactly like the file whatever placeholders TagMango makes;
those the file does not fill are deleted by the module row that takes a placeholder module over
(``update_module``). README, "Whole course trees".
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
