"""Retry delays: capped exponential backoff with jitter that is never zero, honouring Retry-After.

Built from tenacity's wait strategies (the same ones its ``Retrying`` uses), evaluated for a Celery
retry countdown instead of an in-process sleep.
"""

from __future__ import annotations

from tenacity import RetryCallState, wait_exponential, wait_random


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempt + 1``.

    base·2^(attempt-1), capped at ``cap``, of which the last quarter is random (so the delay is between
    80% and 100% of that and never the same for two rows); never shorter than Retry-After (plus jitter).
    """
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = max(1, attempt)
    delay = wait_exponential(multiplier=base, min=base, max=cap)(state)
    jittered = 0.75 * delay + wait_random(min=0.05 * delay, max=0.25 * delay)(state)
    if retry_after:
        jittered = max(jittered, retry_after + wait_random(min=0.1, max=1.0)(state))
    return jittered
