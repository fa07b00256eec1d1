"""What one execution of a row's task message is given (``Message``) and returns (``Finished``, ``Later``, ``Dead``,
with the failure of a row not sent because its job is blocked): ``tasks.runner`` runs it, ``tasks.row_tasks`` turns
the outcome into what Celery must do next."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.job import Blocked
from tasks.park import Slot
from tasks.rows import ErrorCode, Row, RowFailure


@dataclass(frozen=True)
class Message:
    job_id: str
    row_id: str
    gen: int = 0
    #: The rate-limit slot the dispatcher handed this message out for (None: not from the dispatcher).
    slot: Slot | None = None


@dataclass(frozen=True)
class Finished:
    """Done with this message (succeeded, skipped, or nothing to do): acknowledge it."""

    summary: dict


@dataclass(frozen=True)
class Later:
    """Run again after ``countdown`` seconds as generation ``gen`` (the old message becomes stale)."""

    countdown: float
    gen: int
    reason: str = ""
    error: Exception | None = None
    #: Parked already (``RowRun.later``); else the task parks it (tasks.park.park_later).
    parked: bool = False


@dataclass(frozen=True)
class Dead:
    """The row is dead-lettered; the task reports a failure with the reason (Flower shows it)."""

    summary: dict
    failure: RowFailure


Outcome = Finished | Later | Dead


def summary(row: Row) -> dict:
    return {"row": row.row_id, "state": row.state.value, "result": row.result}


def blocked_failure(blocked: Blocked) -> RowFailure:
    """Why a row of a job whose credential was refused (or missing) is not sent."""
    first = blocked.failure
    cause = " ".join(str(part or "") for part in (first.http_status, first.code, first.message)).split()
    code = ErrorCode.NO_CREDENTIALS if first.code == ErrorCode.NO_CREDENTIALS else ErrorCode.CREDENTIAL_REFUSED
    return RowFailure(code, f"not sent: this job's credential was refused on row {blocked.row} "
                            f"({' '.join(cause)}); fix it and requeue")
