"""The Celery tasks: one per TagMango operation, each running one row (``tasks.runner``), and ``requeue``.

A task message carries only the job id, the row id (``<sheet>:<row>``), the title (for Flower), the
row's generation and the rate-limit slot the dispatcher gave it (``tasks.dispatch``); everything else,
including the exact request body, is in the row record in Redis, and the token comes from the worker's
environment (``tasks.credentials``). A row that must wait (a retry's backoff, the limiter) is parked again
in Redis, not held as a countdown in worker memory. The services a task needs are built
once per worker process by the base class ``RowTask``.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from celery import Task
from celery.exceptions import Retry

from tasks import operations
from tasks.celery_app import app
from tasks.operations import Operation
from tasks.park import Slot, park_later
from tasks.runner import Dead, Later, Message, run_row
from tasks.services import Services
from tasks.settings import Settings


class RowDead(Exception):
    """Raised after a row is dead-lettered, so Flower shows the task as failed with the reason."""


class RowTask(Task):
    """Base class of the row tasks: the process's ``Services``, built once from the environment."""

    _services: ClassVar[Services | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared_services(cls) -> Services:
        with cls._lock:
            if RowTask._services is None:
                RowTask._services = Services(Settings.from_env())
            return RowTask._services

    @property
    def services(self) -> Services:
        return self.shared_services()


def execute(task: Task, op: Operation, job_id: str, row_id: str, title: str, gen: int, slot: Slot | None) -> dict:
    services = task.services
    outcome = run_row(services, Message(job_id, row_id, gen, slot))
    if isinstance(outcome, Later):
        # Parked until it is due again (tasks.park), not held by this worker; Flower shows a retry.
        park_later(services.store, job_id, (op.name, row_id, title), outcome.countdown)
        raise Retry(outcome.reason or None, exc=outcome.error, when=outcome.countdown)
    if isinstance(outcome, Dead):
        raise RowDead(f"{row_id}: {outcome.failure}")
    return outcome.summary


def _task_for(op: Operation) -> Any:
    def run(self: Task, job_id: str, row_id: str, title: str, gen: int = 0, slot_at: list | None = None) -> dict:
        # The message carries the Slot as JSON, a list [at, target].
        slot = Slot(float(slot_at[0]), str(slot_at[1])) if slot_at else None
        return execute(self, op, job_id, row_id, title, gen, slot)

    run.__name__ = op.name
    run.__qualname__ = op.name
    run.__doc__ = f"{op.name}: one row ({op.kind}), arguments job id, row id, title."
    return app.task(name=op.task_name, base=RowTask, bind=True, max_retries=None, throws=(RowDead,))(run)


ROW_TASKS = {op.name: _task_for(op) for op in operations.OPERATIONS}


@app.task(name="tagmango.requeue", base=RowTask, bind=True, ignore_result=False)
def requeue(self: RowTask, job_id: str, error_code: str | None = None, http_status: int | None = None,
            rows: list[int] | None = None, all_rows: bool = False) -> dict:
    """Send a job's dead rows again (also callable from Flower's API: /api/task/async-apply/tagmango.requeue)."""
    from tasks.requeue import requeue_rows

    return requeue_rows(self.services.store, job_id, error_code=error_code, http_status=http_status,
                        rows=set(rows) if rows else None, everything=all_rows)
