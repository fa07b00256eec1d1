"""Flower configuration file (``celery flower --conf=this file``): how a row's task is shown.

Flower executes this file and takes the names that are its options. ``format_task`` changes only what the
pages show (search still runs on the raw arguments): ``job  sheet:row  title`` instead of a Python tuple,
and, on a task's page, the address of its job's dashboard page.
"""

import ast
import os

from tasks.operations import task_names  # Flower runs as `celery -A tasks flower`: the registry is there


def format_task(task):  # noqa: ANN001, ANN201 - Flower's hook
    if getattr(task, "name", None) not in task_names():
        return task
    try:
        job, row, title = ast.literal_eval(task.args)[:3]
    except (ValueError, SyntaxError, TypeError):
        return task
    task.args = f"{job}  {row}  {title}"
    dashboard = os.environ.get("TAGMANGO_DASHBOARD_URL", "http://127.0.0.1:8765").rstrip("/")
    task.dashboard = f"{dashboard}/jobs/{job}"
    task._fields = (*task._fields, "dashboard")
    return task
