"""Requests over time, per job, for the dashboard's chart: one Redis hash of per-second tallies.

Key: ``tm:job:{j}:timeline`` (hash), field ``<event>:<epoch second>`` -> count, with the job's TTL.
Events: ``sent`` (a request admitted by the limiter), ``429`` (TagMango answered 429), ``retry`` (a row
scheduled for another attempt). ``tm:job:{j}:notices`` (hash, kind -> text) holds what the job's senders
said once (``tasks.gateway``: another client on the same key). This module imports no Celery: the dashboard
and the command line read it, workers write it.
"""

from __future__ import annotations

import time

import redis

EVENTS = ("sent", "429", "retry")
#: Same lifetime as the job's other keys (TAGMANGO_DEAD_LETTER_DAYS, 30 days by default).
DEFAULT_TTL_S = 30 * 86400


def key(job_id: str) -> str:
    return f"tm:job:{job_id}:timeline"


def field(event: str, at: float | None = None) -> str:
    """The timeline field of ``event`` in the second ``at`` (now by default)."""
    return f"{event}:{int(at if at is not None else time.time())}"


def record(redis_client: redis.Redis, job_id: str, event: str, n: int = 1, at: float | None = None,
           ttl_s: int = DEFAULT_TTL_S) -> None:
    """Count ``n`` ``event``s of ``job_id`` in the current second (one round trip)."""
    second = int(at if at is not None else time.time())
    pipe = redis_client.pipeline(transaction=False)
    pipe.hincrby(key(job_id), f"{event}:{second}", n)
    pipe.expire(key(job_id), ttl_s)
    pipe.execute()


def count_event(redis_client: redis.Redis, job_id: str, event: str, tally: str, ttl_s: int = DEFAULT_TTL_S) -> None:
    """Count one ``event`` in the timeline and the job's ``n_<tally>`` counter together (one round trip)."""
    pipe = redis_client.pipeline(transaction=False)
    pipe.hincrby(f"tm:job:{job_id}:counts", f"n_{tally}", 1)  # tasks.rowstore's counters hash
    pipe.hincrby(key(job_id), f"{event}:{int(time.time())}", 1)
    pipe.expire(key(job_id), ttl_s)
    pipe.execute()


def count_sent(redis_client: redis.Redis, job_id: str, ttl_s: int = DEFAULT_TTL_S) -> None:
    """A request admitted by the limiter: the timeline's ``sent`` and the job's ``n_requests``."""
    count_event(redis_client, job_id, "sent", "requests", ttl_s)


def read(redis_client: redis.Redis, job_id: str) -> dict[str, dict[int, int]]:
    """``{event: {epoch second: count}}`` for every event recorded for the job (empty dicts if none)."""
    out: dict[str, dict[int, int]] = {event: {} for event in EVENTS}
    for field, count in redis_client.hgetall(key(job_id)).items():
        field = field.decode() if isinstance(field, bytes) else field
        event, _, second = field.rpartition(":")
        try:
            out.setdefault(event, {})[int(second)] = int(count)
        except ValueError:
            continue
    return out


def limit_key(job_id: str) -> str:
    return f"tm:job:{job_id}:limit"


def set_limit(redis_client: redis.Redis, job_id: str, per_s: float, ttl_s: int = DEFAULT_TTL_S) -> None:
    """The rate the job's credential was last held to (after a 429 taught the limiter a lower limit)."""
    redis_client.set(limit_key(job_id), f"{per_s:.3f}", ex=ttl_s)


def limit(redis_client: redis.Redis, job_id: str) -> float | None:
    """Requests per second the job's credential was last held to; None while no 429 taught a limit."""
    raw = redis_client.get(limit_key(job_id))
    return float(raw) if raw else None


def notices_key(job_id: str) -> str:
    return f"tm:job:{job_id}:notices"


def add_notice(redis_client: redis.Redis, job_id: str, kind: str, text: str, ttl_s: int = DEFAULT_TTL_S) -> bool:
    """Say ``text`` once per job and kind; True if it was not said before."""
    pipe = redis_client.pipeline(transaction=False)
    pipe.hsetnx(notices_key(job_id), kind, text)
    pipe.expire(notices_key(job_id), ttl_s)
    return bool(pipe.execute()[0])


def notices(redis_client: redis.Redis, job_id: str) -> dict[str, str]:
    """What was said once about the job, by kind (see ``add_notice``)."""
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in redis_client.hgetall(notices_key(job_id)).items()}
