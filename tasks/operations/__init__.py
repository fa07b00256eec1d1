"""The operation registry: one module per TagMango call, registered here (in display order).

Generic code finds operations by name (``get``), by Celery task name (``by_task_name``), by the sheet
they read (``for_sheet_name``), or as the create, update or delete of a kind of object (``create_for``,
``update_for``, ``delete_for``); it never writes an operation's name, nor compares a row's kind with a literal.
"""

from __future__ import annotations

from tasks.operations import (
    create_chapter,
    create_course,
    create_module,
    curriculum,
    delete_chapter,
    tree,
    update_chapter,
    update_course,
    update_module,
)
from tasks.operations.base import (
    CHAPTER,
    COURSE,
    CREATED,
    DELETED,
    MODULE,
    NOUNS,
    UPDATED,
    CallContext,
    Column,
    Draft,
    MissingParentId,
    Operation,
    PartialUpdate,
    Skip,
)
from tasks.rows import Row

OPERATIONS: tuple[Operation, ...] = (
    create_course.OPERATION,
    update_course.OPERATION,
    create_module.OPERATION,
    update_module.OPERATION,
    create_chapter.OPERATION,
    update_chapter.OPERATION,
    delete_chapter.OPERATION,
)
#: Every kind of sheet, in the order they are read (parents first): a sheet of one operation's rows, or a tree.
SHEETS: tuple[Operation, ...] = (create_course.OPERATION, update_chapter.OPERATION, curriculum.SHEET)
_BY_NAME = {op.name: op for op in OPERATIONS}
_BY_TASK = {op.task_name: op for op in OPERATIONS}
_BY_ROLE = {(op.kind, op.verb): op for op in OPERATIONS}
_UPDATES = {op.kind: op for op in OPERATIONS if isinstance(op, PartialUpdate)}
#: The kinds of object, in display order (a course tree's: course, module, chapter).
KINDS = tuple(dict.fromkeys(op.kind for op in OPERATIONS))


def get(name: str) -> Operation:
    return _BY_NAME[name]


def by_task_name(task_name: str) -> Operation:
    return _BY_TASK[task_name]


def create_for(kind: str) -> Operation:
    """The call that creates an object of this kind."""
    return _BY_ROLE[(kind, CREATED)]


def update_for(kind: str) -> PartialUpdate:
    """The partial update of an object of this kind (it says what changed: ``changes``)."""
    return _UPDATES[kind]


def delete_for(kind: str) -> Operation | None:
    """The call that deletes an object of this kind; None if TagMango has none."""
    return _BY_ROLE.get((kind, DELETED))


def kind_rank(kind: str) -> int:
    """Where a kind goes in displays: its place in ``KINDS``, an unknown kind last."""
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def noun(kind: str) -> str:
    """The word a user reads for a kind of object (a chapter is a lesson)."""
    return NOUNS.get(kind, kind)


def has_dependents(name: str) -> bool:
    """Rows of this operation may have rows waiting for them."""
    return get(name).can_be_parent


def take_from_parent(row: Row, parent_result: dict) -> None:
    """Give a waiting row what it needs from its parent's result: its place in a tree (which call, which
    ids), or the ids its operation declares. Raises MissingParentId."""
    if row.params.get("place"):
        tree.place(row, parent_result)
    else:
        get(row.op).take_from_parent(row, parent_result)


def task_names() -> frozenset[str]:
    return frozenset(_BY_TASK)


def sheet_operations() -> tuple[Operation, ...]:
    """The kinds of sheet: operations that read a sheet of their own, and the curriculum (trees)."""
    return SHEETS


def for_sheet_name(name: str) -> Operation | None:
    """The operation a sheet is for, by the sheet's (normalised) name."""
    return next((op for op in sheet_operations() if name in op.sheet_names), None)


def result_columns() -> list[str]:
    return list(dict.fromkeys(c for op in OPERATIONS for c in op.result_columns))


def all_columns() -> frozenset[str]:
    return frozenset(c.name for op in SHEETS for c in op.columns)


__all__ = ["CHAPTER", "COURSE", "CREATED", "DELETED", "KINDS", "MODULE", "OPERATIONS", "SHEETS", "UPDATED",
           "CallContext", "Column", "Draft", "MissingParentId", "Operation", "PartialUpdate", "Skip", "all_columns",
           "by_task_name", "create_for", "delete_for", "for_sheet_name", "get", "has_dependents", "kind_rank", "noun",
           "result_columns", "sheet_operations", "take_from_parent", "task_names", "update_for"]
