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


def test_a_worker_reads_its_settings_once():
    """The Celery configuration and the worker's services share one ``Settings.from_env()``."""
    code = ("import tasks.settings as s; calls = []; read = s.Settings.from_env.__func__; "
            "s.Settings.from_env = classmethod(lambda cls, *a, **k: calls.append(1) or read(cls, *a, **k)); "
            "from celery.app.utils import find_app; app = find_app('tasks'); app.loader.import_default_modules(); "
            "assert app.conf.worker_concurrency; from tasks.row_tasks import worker_services; worker_services(); "
            "print(len(calls))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


@pytest.mark.parametrize("op", operations.OPERATIONS, ids=lambda op: op.name)
def test_each_operation_declares_what_generic_code_needs(op):
    assert op.name and op.task_name.startswith("tagmango.") and op.kind and op.result_columns
    assert operations.get(op.name) is op and operations.by_task_name(op.task_name) is op
    if op.sheet:
        assert op.columns and op.markers() and op.summary_key and op.summary_label
    if op.parent_op:
        assert operations.get(op.parent_op) and op.needs and operations.has_dependents(op.parent_op)


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


def _imports_of(path: Path, modules: set[str]) -> set[str]:
    """The modules of ``modules`` a file imports, at any level: top, inside functions, under TYPE_CHECKING.
    ``from package import module`` is an edge to that module (not to the package's ``__init__``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found |= submodules or {node.module}
            if len(submodules) < len(node.names):  # names defined by the module itself
                found.add(node.module)
    return found & modules


def test_no_import_circle_in_the_worker_side():
    """tasks/ imports downward only (the worker's start-up lives with the tasks, the dispatcher is handed its
    publisher): no module reaches back to one that imports it, however indirectly."""
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PRODUCT if p.parts[len(ROOT.parts)] == "tasks"}
    graph = {name: sorted(_imports_of(path, set(modules)) - {name}) for name, path in modules.items()}
    assert "tasks.celery_app" in graph["tasks.row_tasks"]  # the scan sees imports
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for nxt in graph[name]:
            assert state.get(nxt) != "open", " -> ".join([*path, name, nxt])
            if nxt not in state:
                visit(nxt, [*path, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
