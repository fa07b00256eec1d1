"""Every knob of the pipeline, read from the environment once per process.

The worker, Flower, the command line and docker-compose all read the same variables; the README's
configuration reference lists them with these defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tasks.client import DEFAULT_API_URL

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise SystemExit(f"error: {name}={value!r} is not a number") from None


def redis_url() -> str | None:
    """The configured Redis, or None (then `run` starts an embedded one)."""
    return os.environ.get("TAGMANGO_REDIS_URL") or os.environ.get("REDIS_URL") or None


@dataclass(frozen=True)
class Settings:
    redis_url: str
    api_url: str
    #: Requests per window the limiter allows per credential; TagMango allows 120 per 10 s.
    rate_limit: int
    rate_window: float
    #: Attempts per row per run (first call + retries) before RETRIES_EXHAUSTED.
    max_attempts: int
    backoff_base: float
    backoff_max: float
    #: Redis broker visibility timeout; must exceed backoff_max (countdowns) by far.
    visibility_timeout: float
    #: How long one task execution may own a row; longer than a call with its lookups.
    lease_seconds: float
    http_read_timeout: float
    dead_letter_days: float
    #: Deliveries of one task message that never finished before the row is dead-lettered (poison row).
    max_deliveries: int
    #: Longest wait for the rate limiter spent sleeping in a task; longer waits re-schedule the task (keeping
    #: the reserved slot), so a worker slot is never held waiting and other credentials' rows are not
    #: stuck behind one creator's backlog.
    max_limiter_sleep: float
    #: A row idle this long whose task message is in neither the queue nor ``unacked`` gets a fresh message.
    recovery_idle: float

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            redis_url=redis_url() or DEFAULT_REDIS_URL,
            api_url=(os.environ.get("TAGMANGO_API_URL") or DEFAULT_API_URL).rstrip("/"),
            rate_limit=int(_float("TAGMANGO_RATE_LIMIT", 117)),
            rate_window=_float("TAGMANGO_RATE_WINDOW", 10.0),
            max_attempts=int(_float("TAGMANGO_MAX_ATTEMPTS", 6)),
            backoff_base=_float("TAGMANGO_BACKOFF_BASE", 2.0),
            backoff_max=_float("TAGMANGO_BACKOFF_MAX", 120.0),
            visibility_timeout=_float("TAGMANGO_VISIBILITY_TIMEOUT", 600.0),
            lease_seconds=_float("TAGMANGO_LEASE_SECONDS", 0) or 2 * _float("TAGMANGO_HTTP_TIMEOUT", 30.0) + 60,
            http_read_timeout=_float("TAGMANGO_HTTP_TIMEOUT", 30.0),
            dead_letter_days=_float("TAGMANGO_DEAD_LETTER_DAYS", 30.0),
            max_deliveries=int(_float("TAGMANGO_MAX_DELIVERIES", 5)),
            max_limiter_sleep=_float("TAGMANGO_MAX_LIMITER_SLEEP", 0.5),
            recovery_idle=_float("TAGMANGO_RECOVERY_IDLE", 90.0),
        )
