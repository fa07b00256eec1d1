"""What to do after a failed call: one pure decision, tested branch by branch (tests/test_retry.py).

``decide(error, row, settings)`` answers ``RetryAfter(seconds)`` or ``GiveUp(failure, blocks_job)``:

- a permanent error (4xx other than 429) gives up at once with TagMango's status, errorCode and message;
  a 401, or an errorCode that means the account cannot import at all, also blocks the job's other rows;
- a transient error (429, 5xx, timeouts, dropped connections) retries after a capped, jittered backoff that
  honours Retry-After, until the row has used ``max_attempts`` in this round: then RETRIES_EXHAUSTED, with
  the last error in the message.

Waiting for the rate limiter is not a failure and never spends an attempt; that is the runner's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks import errors
from tasks.backoff import retry_delay
from tasks.rows import ErrorCode, Row, RowFailure
from tasks.settings import Settings

#: errorCodes that mean "this credential cannot import here at all": stop sending the job's other rows.
ACCOUNT_ERROR_CODES = frozenset({"COURSE_USER_NOT_CREATOR"})


@dataclass(frozen=True)
class RetryAfter:
    seconds: float


@dataclass(frozen=True)
class GiveUp:
    failure: RowFailure
    blocks_job: bool = False


def failure_of(error: errors.ApiError) -> RowFailure:
    return RowFailure(code=error.error_code, message=error.message, http_status=error.status,
                      kind=type(error).__name__)


def decide(error: errors.ApiError, row: Row, settings: Settings) -> RetryAfter | GiveUp:
    if not error.retryable:
        blocks = error.status == 401 or error.error_code in ACCOUNT_ERROR_CODES
        return GiveUp(failure_of(error), blocks_job=blocks)
    if row.round_attempts >= settings.max_attempts:
        last = " ".join(str(p) for p in (error.status or type(error).__name__, error.error_code or "", error.message)
                        if p)
        return GiveUp(RowFailure(ErrorCode.RETRIES_EXHAUSTED, f"gave up after {row.round_attempts} attempts; last "
                                 f"error: {last}", http_status=error.status, kind=type(error).__name__))
    retry_after = error.retry_after if isinstance(error, errors.RateLimited) else None
    return RetryAfter(retry_delay(row.round_attempts, settings.backoff_base, settings.backoff_max, retry_after))
