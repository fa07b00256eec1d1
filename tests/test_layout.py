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


# -- the house's layout: layers, no circles, small modules, a closed registry ------------------------------------

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PRODUCT}


def _imports(path: Path) -> set[str]:
    """Product modules a file imports anywhere: top level, inside functions, under TYPE_CHECKING."""
    found = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # ``from pkg import sub`` imports the submodule; ``from pkg import name`` what pkg/__init__ defines.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != _module_name(path):
                found.add(name)
    return found


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_among_product_modules():
    assert _cycles() == []


def test_the_checks_above_see_imports_inside_functions():
    """The layout checks read imports wherever they stand (the rule would be vacuous otherwise)."""
    assert "tasks.gateway" in GRAPH["importer.local.session"] and "importer.ingest.plan" in GRAPH["importer.matching"]


#: Which importer subpackage may import which (besides ``tasks``): commands on top, the command line above all.
LAYERS = {
    "importer.ingest": set(),
    "importer.report": {"importer.ingest.problems"},
    "importer.matching": {"importer.ingest.plan", "importer.ingest.problems", "importer.report.tables"},
    "importer.local": {"importer.config", "importer.sandbox"},
    "importer.dashboard": {"importer.report", "importer.local", "importer.config"},
    "importer.commands": {"importer.ingest", "importer.matching", "importer.report", "importer.local",
                          "importer.config"},
    "importer.sandbox": set(),
}


def test_layers():
    """A module imports only its own subpackage, ``tasks``, the shared leaves (config, exit codes) and the layers
    below it; nothing but the command line imports a command module."""
    wrong = []
    for module, imported in GRAPH.items():
        layer = next((lay for lay in LAYERS if module == lay or module.startswith(lay + ".")), None)
        if layer is None:
            continue
        allowed = LAYERS[layer] | {layer, "importer.exitcodes", "importer"}
        for target in imported:
            if target.startswith("tasks") or any(target == a or target.startswith(a + ".") for a in allowed):
                continue
            wrong.append(f"{module} -> {target}")
    assert not wrong, wrong
    assert not [m for m, imported in GRAPH.items() if not m.startswith(("importer.commands", "importer.cli"))
                and any(t.startswith("importer.commands") for t in imported)]
    assert not [m for m, imported in GRAPH.items() if m.startswith("tasks") and
                any(t.startswith("importer") for t in imported)]  # the worker side never imports the importer


def test_importer_shows_its_architecture_in_subpackages():
    top = sorted(p.name for p in (ROOT / "importer").glob("*.py"))
    assert len(top) <= 6, top
    assert {"commands", "ingest", "matching", "report", "local", "dashboard", "sandbox"} <= {
        p.name for p in (ROOT / "importer").iterdir() if (p / "__init__.py").exists()}


def test_no_product_module_over_350_lines():
    long = {str(p.relative_to(ROOT)): n for p in PRODUCT if (n := len(p.read_text().splitlines())) > 350}
    assert not long, long


def test_no_operation_name_outside_the_registry():
    """Generic code asks the registry (tasks/operations/); only the operations and the sandbox name them."""
    names = {op.name for op in operations.OPERATIONS} | operations.task_names()
    found = []
    for path in PRODUCT:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("tasks/operations/", "importer/sandbox/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.append(f"{rel}:{node.lineno} {node.value!r}")
            if isinstance(node, ast.JoinedStr) and any(
                    isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value.rstrip("_") in
                    {"create", "update", "delete"} for v in node.values):
                found.append(f"{rel}:{node.lineno} an operation name made with an f-string")
    assert not found, found
