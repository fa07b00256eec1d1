"""The package layout promises: the worker's building blocks load without Celery, the worker side never
imports the importer, and each operation is complete."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import operations


@pytest.mark.parametrize("module", ["tasks.ledger", "tasks.limiter", "tasks.client", "tasks.errors", "tasks.rows",
                                    "tasks.runner", "tasks.operations"])
def test_building_blocks_do_not_import_celery(module):
    code = f"import sys, {module}; print('celery' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_worker_side_does_not_import_the_importer():
    code = ("import sys, tasks.row_tasks, tasks.requeue, tasks.recovery, tasks.enqueue; "
            "print(sorted(m for m in sys.modules if m == 'importer' or m.startswith('importer.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_celery_finds_the_app_and_one_task_per_operation():
    code = ("from celery.app.utils import find_app; app = find_app('tasks'); app.loader.import_default_modules(); "
            "print(sorted(n for n in app.tasks if n.startswith('tagmango.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted([*operations.task_names(), "tagmango.requeue"]))


@pytest.mark.parametrize("op", operations.OPERATIONS, ids=lambda op: op.name)
def test_each_operation_declares_what_generic_code_needs(op):
    assert op.name and op.task_name.startswith("tagmango.") and op.kind and op.result_columns
    assert operations.get(op.name) is op and operations.by_task_name(op.task_name) is op
    assert op.summary_key and op.summary_label and op.kind in operations.KINDS
    # matching and the tree planner find it by its kind and verb: one create, update and delete per kind
    finder = {operations.CREATED: operations.create_for, operations.UPDATED: operations.update_for,
              operations.DELETED: operations.delete_for}
    assert finder[op.verb](op.kind) is op


@pytest.mark.parametrize("sheet", operations.SHEETS, ids=lambda sheet: sheet.sheet)
def test_each_sheet_kind_declares_what_validation_needs(sheet):
    assert sheet.sheet and sheet.sheet_names and sheet.columns and sheet.markers()
    assert operations.for_sheet_name(sheet.sheet) is sheet
    if sheet.operation is not None:
        assert operations.sheet_for(sheet.operation.name) is sheet
    if sheet.parent_op:
        assert sheet.operation.needs and sheet.parent_column and operations.has_dependents(sheet.parent_op)


ROOT = Path(__file__).resolve().parent.parent
PRODUCT = sorted(p for pkg in ("importer", "tasks") for p in (ROOT / pkg).rglob("*.py"))


def _calls_and_attributes(path: Path) -> tuple[set[str], set[str]]:
    """Names called as functions/classes (``X(...)``, ``m.X(...)``) and attributes read (``obj.attr``) in a file."""
    calls, attributes = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            calls.add(func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else "")
        if isinstance(node, ast.Attribute):
            attributes.add(node.attr)
    return calls, attributes


def test_no_operation_name_or_kind_is_written_outside_the_registry():
    """Generic code asks the registry (``create_for(kind)``, an operation's ``verb``, ``KINDS``...): an operation's
    name, its Celery task's or a kind written elsewhere would have to change with the registry. The sandbox plays
    TagMango and names its own routes."""
    words = {op.name for op in operations.OPERATIONS} | set(operations.task_names()) | set(operations.KINDS)
    registry, sandbox = ROOT / "tasks" / "operations", ROOT / "importer" / "sandbox"
    offenders = []
    for path in PRODUCT:
        if registry in path.parents or sandbox in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in words:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not offenders, offenders


def test_only_the_gateway_talks_to_tagmango():
    """One door (tasks.gateway): no other product module builds the HTTP client or the limiter, or reaches into a
    door for them, so every request of every command shares one client, one limiter and one retry policy."""
    gateway = ROOT / "tasks" / "gateway.py"
    offenders = []
    for path in PRODUCT:
        if path == gateway:
            continue
        calls, attributes = _calls_and_attributes(path)
        made = calls & {"TagMangoClient", "RateLimiter"}
        reached = attributes & {"_client", "_limiter"}
        if path.name == "limiter.py":
            made.discard("RateLimiter")
        if made or reached:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(made | reached)}")
    assert not offenders, offenders
    calls, _ = _calls_and_attributes(gateway)
    assert {"TagMangoClient", "RateLimiter"} <= calls  # the rule is not vacuous: the gateway does build them
