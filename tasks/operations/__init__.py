"""The registry: one module per TagMango call (its ``Operation``), registered here in display order, and the kinds
of sheet the importer reads (``SheetKind``s: a sheet of one operation's rows, or the curriculum's trees).

Generic code finds operations by name (``get``), by Celery task name (``by_task_name``), or as the create,
update or delete of a kind of object (``create_for``, ``update_for``, ``delete_for``), and sheet kinds by sheet
name (``for_sheet_name``) or by the operation of their rows (``sheet_for``); it never writes an operation's
name, nor compares a row's kind with a literal.
"""

from __future__ import annotations

from tasks.operations import (
    create_chapter,
    create_course,
    create_module,
    curriculum,
    delete_chapter,
    delete_module,
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
    MissingParentId,
    Operation,
    PartialUpdate,
    Skip,
)
from tasks.operations.sheets import Column, Draft, SheetKind
from tasks.rows import Row

OPERATIONS: tuple[Operation, ...] = (
    create_course.OPERATION,
    update_course.OPERATION,
    create_module.OPERATION,
    update_module.OPERATION,
    delete_module.OPERATION,
    create_chapter.OPERATION,
    update_chapter.OPERATION,
    delete_chapter.OPERATION,
)
#: Every kind of sheet, in the order they are read (parents first).
SHEETS: tuple[SheetKind, ...] = (create_course.SHEET, update_chapter.SHEET, curriculum.SHEET)
_BY_NAME = {op.name: op for op in OPERATIONS}
_BY_TASK = {op.task_name: op for op in OPERATIONS}
_BY_ROLE = {(op.kind, op.verb): op for op in OPERATIONS}
_UPDATES = {op.kind: op for op in OPERATIONS if isinstance(op, PartialUpdate)}
_SHEET_OF = {sheet.operation.name: sheet for sheet in SHEETS if sheet.operation is not None}
#: The kinds of object, in display order (a course tree's: course, module, chapter).
KINDS = tuple(dict.fromkeys(op.kind for op in OPERATIONS))


# -- operations --------------------------------------------------------------------------------------


def get(name: str) -> Operation:
    return _BY_NAME[name]


def by_task_name(task_name: str) -> Operation:
    return _BY_TASK[task_name]


def task_names() -> frozenset[str]:
    return frozenset(_BY_TASK)


def create_for(kind: str) -> Operation:
    """The call that creates an object of this kind."""
    return _BY_ROLE[(kind, CREATED)]


def update_for(kind: str) -> PartialUpdate:
    """The partial update of an object of this kind (it says what changed: ``changes``)."""
    return _UPDATES[kind]


def delete_for(kind: str) -> Operation | None:
    """The call that deletes an object of this kind; None if TagMango has none."""
    return _BY_ROLE.get((kind, DELETED))


def has_dependents(name: str) -> bool:
    """Rows of this operation may have rows waiting for them."""
    return get(name).can_be_parent


def take_from_parent(row: Row, parent_result: dict) -> None:
    """Give a waiting row what it needs from its parent's result: its place in a tree (which call, which
    ids), or the ids its operation declares. Raises MissingParentId."""
    if row.placed_by_parent:
        tree.place(row, parent_result)
    else:
        get(row.op).take_from_parent(row, parent_result)


def result_columns() -> list[str]:
    return list(dict.fromkeys(c for op in OPERATIONS for c in op.result_columns))


# -- kinds of object ---------------------------------------------------------------------------------


def kind_rank(kind: str) -> int:
    """Where a kind goes in displays: its place in ``KINDS``, an unknown kind last."""
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def noun(kind: str) -> str:
    """The word a user reads for a kind of object (a chapter is a lesson)."""
    return NOUNS.get(kind, kind)


# -- sheets ------------------------------------------------------------------------------------------


def sheet_kinds() -> tuple[SheetKind, ...]:
    """The kinds of sheet, parents first: sheets of one operation's rows, and the curriculum (trees)."""
    return SHEETS


def for_sheet_name(name: str) -> SheetKind | None:
    """The kind of a sheet, by the sheet's (normalised) name."""
    return next((sheet for sheet in SHEETS if name in sheet.sheet_names), None)


def sheet_for(op_name: str) -> SheetKind | None:
    """The kind of sheet whose rows run as this operation (None: rows of a tree, or made by matching)."""
    return _SHEET_OF.get(op_name)


def all_columns() -> frozenset[str]:
    return frozenset(c.name for sheet in SHEETS for c in sheet.columns)


__all__ = ["CHAPTER", "COURSE", "CREATED", "DELETED", "KINDS", "MODULE", "OPERATIONS", "SHEETS", "UPDATED",
           "CallContext", "Column", "Draft", "MissingParentId", "Operation", "PartialUpdate", "SheetKind", "Skip",
           "all_columns", "by_task_name", "create_for", "delete_for", "for_sheet_name", "get", "has_dependents",
           "kind_rank", "noun", "result_columns", "sheet_for", "sheet_kinds", "take_from_parent", "task_names",
           "update_for"]
