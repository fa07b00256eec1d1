"""The Celery application. ``celery -A tasks worker`` finds it as ``tasks.app``.

Importing this module does not import the task module: workers load it through ``include``; publishers send
by task name (tasks.producer).
"""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_ready

app = Celery("tagmango", include=["tasks.row_tasks"])
app.config_from_object("tasks.celeryconfig")


@worker_ready.connect
def _start_background_threads(**_: object) -> None:
    """Each worker runs the recovery sweeper (rows whose task message was lost get a fresh one, see
    tasks/recovery.py) and a dispatcher (parked rows go to the queue when their slot comes, see tasks/dispatch.py);
    one of each works at a time across all workers, through Redis locks."""
    from tasks.recovery import start_sweeper
    from tasks.row_tasks import RowTask

    services = RowTask.shared_services()
    start_sweeper(services.store, services.settings)
    services.dispatcher().start()
