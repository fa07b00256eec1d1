"""The Celery application. ``celery -A tasks worker`` finds it as ``tasks.app``."""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_ready

app = Celery("tagmango")
app.config_from_object("tasks.celeryconfig")


@worker_ready.connect
def _start_recovery_sweeper(**_: object) -> None:
    """Each worker gives rows whose task message was lost a fresh one (see tasks/recovery.py)."""
    from tasks.recovery import start_sweeper
    from tasks.row_tasks import runtime

    rt = runtime()
    start_sweeper(rt.store, rt.settings)
