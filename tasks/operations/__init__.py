"""The operation registry: one module per TagMango call, registered here (in display order).

Generic code finds operations by name (``get``), by Celery task name (``by_task_name``) or by the sheet
they read (``for_sheet``); it never compares a row's kind with a literal.
"""

from __future__ import annotations

from tasks.operations import create_course, update_chapter
from tasks.operations.base import CallContext, Column, Draft, MissingParentId, Operation, Skip

OPERATIONS: tuple[Operation, ...] = (
    create_course.OPERATION,
    update_chapter.OPERATION,
)
_BY_NAME = {op.name: op for op in OPERATIONS}
_BY_TASK = {op.task_name: op for op in OPERATIONS}
_PARENTS = frozenset(op.parent_op for op in OPERATIONS if op.parent_op)


def get(name: str) -> Operation:
    return _BY_NAME[name]


def by_task_name(task_name: str) -> Operation:
    return _BY_TASK[task_name]


def has_dependents(name: str) -> bool:
    """Rows of this operation may have rows waiting for them."""
    return name in _PARENTS


def task_names() -> frozenset[str]:
    return frozenset(_BY_TASK)


def sheet_operations() -> tuple[Operation, ...]:
    """Operations that read a sheet of their own."""
    return tuple(op for op in OPERATIONS if op.sheet)


def for_sheet_name(name: str) -> Operation | None:
    """The operation a sheet is for, by the sheet's (normalised) name."""
    return next((op for op in sheet_operations() if name in op.sheet_names), None)


def result_columns() -> list[str]:
    return list(dict.fromkeys(c for op in OPERATIONS for c in op.result_columns))


def all_columns() -> frozenset[str]:
    return frozenset(c.name for op in OPERATIONS for c in op.columns)


__all__ = ["OPERATIONS", "CallContext", "Column", "Draft", "MissingParentId", "Operation", "Skip", "all_columns",
           "by_task_name", "for_sheet_name", "get", "has_dependents", "result_columns", "sheet_operations", "task_names"]
