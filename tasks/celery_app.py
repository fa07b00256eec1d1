"""The Celery application. ``celery -A tasks worker`` finds it as ``tasks.app``.

It imports nothing of ours: workers load the task module (tasks.row_tasks, which also registers the worker's
start-up step) through ``include``; publishers send by task name.
"""

from __future__ import annotations

from celery import Celery

app = Celery("tagmango", include=["tasks.row_tasks"])
app.config_from_object("tasks.celeryconfig")
