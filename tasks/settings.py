"""Every knob of the pipeline, read from the environment once per process, at its edge (``current()`` in a worker).

The worker, Flower, the command line and docker-compose all read the same variables; the README's
configuration reference lists them with the defaults of ``tasks.defaults``. A bad value raises
``ConfigError`` (a ``ValueError``); the command line turns it into exit code 3.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

from tasks import defaults


class ConfigError(ValueError):
    """A setting has a value we cannot use; the text names the variable."""


def redis_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """The configured Redis, or None (then the command line starts an embedded one)."""
    return environ.get("TAGMANGO_REDIS_URL") or environ.get("REDIS_URL") or None


def api_url(environ: Mapping[str, str] = os.environ) -> str:
    return (environ.get("TAGMANGO_API_URL") or defaults.DEFAULT_API_URL).rstrip("/")


@dataclass(frozen=True)
class Settings:
    redis_url: str = defaults.DEFAULT_REDIS_URL
    api_url: str = defaults.DEFAULT_API_URL
    rate_limit: int = defaults.DEFAULT_RATE_LIMIT
    rate_window: float = defaults.DEFAULT_RATE_WINDOW_S
    max_attempts: int = defaults.DEFAULT_MAX_ATTEMPTS
    backoff_base: float = defaults.DEFAULT_BACKOFF_BASE_S
    backoff_max: float = defaults.DEFAULT_BACKOFF_MAX_S
    visibility_timeout: float = defaults.DEFAULT_VISIBILITY_TIMEOUT_S
    #: How long one task execution may own a row: longer than a call with its lookups.
    lease_seconds: float = 2 * defaults.DEFAULT_HTTP_TIMEOUT_S + 60
    http_read_timeout: float = defaults.DEFAULT_HTTP_TIMEOUT_S
    dead_letter_days: float = defaults.DEFAULT_DEAD_LETTER_DAYS
    max_deliveries: int = defaults.DEFAULT_MAX_DELIVERIES
    max_limiter_sleep: float = defaults.DEFAULT_MAX_LIMITER_SLEEP_S
    recovery_idle: float = defaults.DEFAULT_RECOVERY_IDLE_S
    worker_concurrency: int = defaults.DEFAULT_WORKER_CONCURRENCY
    eta_task_limit: int = defaults.DEFAULT_ETA_TASK_LIMIT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        def number(name: str, default: float) -> float:
            value = environ.get(name, "").strip()
            if not value:
                return default
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{name}={value!r} is not a number") from None

        timeout = number("TAGMANGO_HTTP_TIMEOUT", defaults.DEFAULT_HTTP_TIMEOUT_S)
        settings = cls(
            redis_url=redis_url(environ) or defaults.DEFAULT_REDIS_URL,
            api_url=api_url(environ),
            rate_limit=int(number("TAGMANGO_RATE_LIMIT", defaults.DEFAULT_RATE_LIMIT)),
            rate_window=number("TAGMANGO_RATE_WINDOW", defaults.DEFAULT_RATE_WINDOW_S),
            max_attempts=int(number("TAGMANGO_MAX_ATTEMPTS", defaults.DEFAULT_MAX_ATTEMPTS)),
            backoff_base=number("TAGMANGO_BACKOFF_BASE", defaults.DEFAULT_BACKOFF_BASE_S),
            backoff_max=number("TAGMANGO_BACKOFF_MAX", defaults.DEFAULT_BACKOFF_MAX_S),
            visibility_timeout=number("TAGMANGO_VISIBILITY_TIMEOUT", defaults.DEFAULT_VISIBILITY_TIMEOUT_S),
            lease_seconds=number("TAGMANGO_LEASE_SECONDS", 0) or 2 * timeout + 60,
            http_read_timeout=timeout,
            dead_letter_days=number("TAGMANGO_DEAD_LETTER_DAYS", defaults.DEFAULT_DEAD_LETTER_DAYS),
            max_deliveries=int(number("TAGMANGO_MAX_DELIVERIES", defaults.DEFAULT_MAX_DELIVERIES)),
            max_limiter_sleep=number("TAGMANGO_MAX_LIMITER_SLEEP", defaults.DEFAULT_MAX_LIMITER_SLEEP_S),
            recovery_idle=number("TAGMANGO_RECOVERY_IDLE", defaults.DEFAULT_RECOVERY_IDLE_S),
            worker_concurrency=int(number("TAGMANGO_WORKER_CONCURRENCY", defaults.DEFAULT_WORKER_CONCURRENCY)),
            eta_task_limit=int(number("TAGMANGO_ETA_TASK_LIMIT", defaults.DEFAULT_ETA_TASK_LIMIT)),
        )
        if settings.rate_limit < 1 or settings.rate_window <= 0:
            raise ConfigError("TAGMANGO_RATE_LIMIT must be at least 1 and TAGMANGO_RATE_WINDOW above 0")
        if settings.max_attempts < 1:
            raise ConfigError("TAGMANGO_MAX_ATTEMPTS must be at least 1")
        return settings


@functools.cache
def current() -> Settings:
    """This process's settings, read from the environment the first time they are asked for: a worker's Celery
    configuration (tasks.celeryconfig) and its services (tasks.row_tasks) share the one reading."""
    return Settings.from_env()
