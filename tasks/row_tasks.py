"""The Celery side of a worker: one task per TagMango operation (each runs one row, ``tasks.runner``), ``requeue``,
the sending of dispatched rows as task messages, and the start-up step that runs the dispatcher and the sweeper.

A task message carries only the job id, the row id (``<sheet>:<row>``), the title (for Flower), the row's generation
and its ``Slot``; the body is in the row record in Redis, the token in the worker's environment. Only workers load
this module (``include`` in ``tasks.celery_app``), which is why the start-up step is registered here.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import bootsteps
from celery.backends.base import DisabledBackend
from celery.exceptions import Retry

from tasks import operations
from tasks.celery_app import app
from tasks.client import warm_up
from tasks.defaults import QUEUE
from tasks.dispatch import Dispatched, Dispatcher, Publisher, PublishRows
from tasks.operations import Operation
from tasks.park import Slot, park_later
from tasks.recovery import Sweeper
from tasks.requeue import requeue_rows
from tasks.runner import Dead, Later, Message, run_row
from tasks.services import Services
from tasks.settings import current

_services: Services | None = None
_services_lock = threading.Lock()


def worker_services() -> Services:
    """This worker process's ``Services``, built once (by the start-up step or the first task) from the settings its
    Celery configuration was read with."""
    global _services
    with _services_lock:
        if _services is None:
            _services = Services(current())
        return _services


# -- the tasks --------------------------------------------------------------------------------------


class RowDead(Exception):
    """Raised after a row is dead-lettered, so Flower shows the task as failed with the reason."""


def execute(op: Operation, job_id: str, row_id: str, title: str, gen: int, slot: Slot | None) -> str:
    services = worker_services()
    outcome = run_row(services, Message(job_id, row_id, gen, slot))
    if isinstance(outcome, Later):
        # Parked until it is due again (tasks.park), not held by this worker; Flower shows a retry.
        if not outcome.parked:
            park_later(services.store, job_id, (op.name, row_id, title), outcome.countdown)
        raise Retry(outcome.reason or None, exc=outcome.error, when=outcome.countdown)
    if isinstance(outcome, Dead):
        raise RowDead(f"{row_id}: {outcome.failure}")
    return shown(outcome.summary)


def shown(summary: dict) -> str:
    """A row task's return value, as Flower shows it: one line (``courses:2 succeeded {"course_id": ...}``).

    A string, not the summary dict: Celery puts ``saferepr(return value)`` in each task-succeeded event, and its
    pure-Python repr of a nested dict cost about 70 us per row, a string's about 5."""
    rest = {k: v for k, v in summary.items() if k not in ("row", "state")}
    detail = rest.pop("result", None) or {}
    return " ".join([str(summary.get("row")), str(summary.get("state")),
                     *([json.dumps(detail, separators=(", ", ": "), default=str)] if detail else []),
                     *(f"{k}={v}" for k, v in rest.items())])


def _task_for(op: Operation) -> Any:
    def run(job_id: str, row_id: str, title: str, gen: int = 0, slot_at: list | None = None) -> str:
        # The message carries the Slot as JSON, a list [at, target].
        slot = Slot(float(slot_at[0]), str(slot_at[1])) if slot_at else None
        return execute(op, job_id, row_id, title, gen, slot)

    run.__name__ = op.name
    run.__qualname__ = op.name
    run.__doc__ = f"{op.name}: one row ({op.kind}), arguments job id, row id, title."
    task = app.task(name=op.task_name, max_retries=None, throws=(RowDead,))(run)
    # Row tasks store no result (the row record is the result; task_ignore_result), so they need no result backend:
    # Celery would otherwise build a Redis backend in each pool thread (its Redis backend is per thread), each
    # thread's first row paying for it.
    task.backend = ROW_RESULTS
    return task


#: The (no) result backend of every row task.
ROW_RESULTS = DisabledBackend(app)


ROW_TASKS = {op.name: _task_for(op) for op in operations.OPERATIONS}


@app.task(name="tagmango.requeue", ignore_result=False)
def requeue(job_id: str, error_code: str | None = None, http_status: int | None = None,
            rows: list[int] | None = None, all_rows: bool = False) -> dict:
    """Send a job's dead rows again (also callable from Flower's API: /api/task/async-apply/tagmango.requeue)."""
    return requeue_rows(worker_services().store, job_id, error_code=error_code, http_status=http_status,
                        rows=set(rows) if rows else None, everything=all_rows)


# -- sending dispatched rows ------------------------------------------------------------------------


def task_id(job_id: str, row_id: str) -> str:
    """One Celery task id per row, across its retries (Flower shows one task per row)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tagmango:{job_id}/{row_id}"))


def message_args(row: Dispatched) -> tuple[tuple, dict]:
    """A dispatched row's task arguments: (job id, row id, title) and {gen, slot_at}; the Slot goes as a list."""
    return (row.job_id, row.row_id, row.title), {"gen": row.gen, "slot_at": [row.slot.at, row.slot.target]}


#: Celery cuts ``argsrepr``/``kwargsrepr`` at this many characters (``AMQP.argsrepr_maxsize``).
REPR_MAXSIZE = 1024


def _chars(text: str) -> str:
    """A string as Celery's ``saferepr`` writes it (quoted, single quotes escaped, nothing else: not ``repr``)."""
    return "'" + text.replace("'", "\\'") + "'"


def message_reprs(args: tuple, kwargs: dict) -> tuple[str, str]:
    """``argsrepr`` and ``kwargsrepr`` of a row's message, what Flower shows: exactly Celery's ``saferepr`` of them
    (tests/test_dispatch.py compares), at a small part of its cost; long ones (which ``saferepr`` cuts) by
    ``saferepr`` itself."""
    job_id, row_id, title = args
    argsrepr = f"({_chars(job_id)}, {_chars(row_id)}, {_chars(title)})"
    at, target = kwargs["slot_at"]
    kwargsrepr = f"{{'gen': {int(kwargs['gen'])!r}, 'slot_at': [{float(at)!r}, {_chars(target)}]}}"
    if len(argsrepr) + len(kwargsrepr) >= REPR_MAXSIZE - 100:
        from celery.utils.saferepr import saferepr

        return saferepr(args, REPR_MAXSIZE), saferepr(kwargs, REPR_MAXSIZE)
    return argsrepr, kwargsrepr


def send(producer: Any, rows: list[Dispatched]) -> None:
    """Publish dispatched rows as task messages of their operations, by task name: Celery's own message, built and
    sent by the two calls ``send_task`` makes (``create_task_message``, protocol 2; ``send_task_message``, with its
    publish signals) without what ``send_task`` adds around them for a caller that wants a result (routing, a
    result object); the same message (tests/test_dispatch.py compares them). All the rows of one tick go out in one
    Redis pipeline (kombu's publish batch; where the transport cannot batch safely, kombu publishes each at once),
    without retries (a failed publish is the dispatcher's to handle: it parks the rows again), the reprs Flower shows
    made ahead (``message_reprs``), and the queue not declared again for every message (``celery_publisher``
    declares it once)."""
    amqp = app.amqp
    with producer.batch():
        for row in rows:
            name = operations.get(row.op).task_name
            args, kwargs = message_args(row)
            argsrepr, kwargsrepr = message_reprs(args, kwargs)
            message = amqp.create_task_message(task_id(row.job_id, row.row_id), name, args, kwargs,
                                               retries=row.attempts, reply_to=app.thread_oid, ignore_result=True,
                                               argsrepr=argsrepr, kwargsrepr=kwargsrepr)
            amqp.send_task_message(producer, name, message, queue=QUEUE, declare=[], retry=False)


def celery_publisher(broker_url: str) -> Publisher:
    """The dispatcher's publisher: one broker connection and producer for each spell as the leader. The queue is
    declared once at the start of a spell (workers declare it too when they start consuming), not with every
    message as Celery would."""

    @contextmanager
    def connect() -> Iterator[PublishRows]:
        with app.connection_for_write(broker_url) as conn, conn.Producer() as producer:
            producer.maybe_declare(app.amqp.queues[QUEUE])
            yield lambda rows: send(producer, rows)

    return connect


# -- the worker's start-up step ---------------------------------------------------------------------


class BackgroundThreads(bootsteps.StartStopStep):
    """Each worker process runs a dispatcher (parked rows go to the queue when their slot comes, tasks.dispatch) and
    the recovery sweeper (rows whose message was lost get a fresh one, tasks.recovery); one of each works at a time
    across all workers, through Redis locks."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.dispatcher: Dispatcher | None = None
        self.sweeper: Sweeper | None = None

    def start(self, worker: Any) -> None:
        warm_up()
        services = worker_services()
        self.sweeper = Sweeper(services.store, services.settings)
        self.sweeper.start()
        self.dispatcher = services.dispatcher(celery_publisher(services.settings.redis_url))
        self.dispatcher.start()

    def stop(self, worker: Any) -> None:
        for thread in (self.dispatcher, self.sweeper):
            if thread is not None:
                thread.stop()

    terminate = stop


app.steps["worker"].add(BackgroundThreads)


# -- task events in batches -------------------------------------------------------------------------

#: A worker publishes the task events of this long at once (one Redis PUBLISH of a list of events, which Flower and
#: every Celery event receiver take apart); Flower sees a task's events at most this much later.
EVENTS_FLUSH_S = 0.1
#: And, whatever happened to a scheduled flush, every this often: events Celery kept back because a publish failed
#: (its outbound buffer) or that no flush was scheduled for go out then, not with the next task's events, which at
#: the end of an import never come (a suite run once saw a row's task-succeeded missing for two minutes).
EVENTS_SWEEP_S = 1.0


class EventBatches(bootsteps.StartStopStep):
    """Task events (received, started, succeeded, retried, failed: three or more per row) go out in batches.

    With the threads pool Celery buffers task events and publishes the buffer as one message, but schedules that on
    the next turn of the event loop for every event, waking the loop from another thread each time: under load
    about one publish and one wake-up per event, over a tenth of a worker's CPU (py-spy, tests/bench ``profile16``).
    Here the first event of a batch wakes the loop once, which flushes ``EVENTS_FLUSH_S`` later; Celery still
    flushes at once when its buffer is full (24 events), and on shutdown; and the loop flushes every
    ``EVENTS_SWEEP_S`` in any case. Without an event loop (other pools) nothing changes."""

    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.pending = False
        self.sweep: Any = None  # the repeating flush's timer entry
        if c.hub is not None:
            c.on_send_event_buffered = lambda: self.buffered(c)  # the Events step builds each dispatcher with it

    def start(self, c: Any) -> None:
        self.pending = False  # the consumer (re)starts, after a lost connection with a new loop: schedule afresh
        self.stop(c)
        if c.hub is not None:
            self.sweep = c.hub.call_repeatedly(EVENTS_SWEEP_S, self.flush, c)

    def stop(self, c: Any) -> None:
        if self.sweep is not None:
            self.sweep.cancel()
            self.sweep = None

    def buffered(self, c: Any) -> None:
        """An event was buffered (any thread): make sure a flush is scheduled."""
        if not self.pending:
            self.pending = True
            c.hub.call_soon(lambda: c.hub.call_later(EVENTS_FLUSH_S, self.flush, c))

    def flush(self, c: Any) -> None:
        self.pending = False  # an event buffered from now on schedules the next flush
        c._flush_events()


app.steps["consumer"].add(EventBatches)
