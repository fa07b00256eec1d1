"""The one door to TagMango: every request of every command and worker goes through a ``Gateway``.

Per credential, a ``Door`` owns the pooled HTTP client (``tasks.client``), each request's flight in the rate
limiter (admitted before it leaves, done when its answer is back; a 429 teaches the limiter the real limit
and cools every sender of the credential down, ``tasks.limiter``), transient retries of reads (tenacity), and
the job's request counts (``tasks.timeline``). Workers, matching, the token check and the export all call
TagMango through a door, so reads and writes of one credential share one budget, whoever sends them; nothing
else builds a ``TagMangoClient`` or a ``RateLimiter`` (``tests/test_layout.py`` checks it).

A 429 that comes while our own flight log shows room means TagMango's limit for the key is lower than ours
or another client uses the same key: the door says so once per job (``tm:job:{j}:notices``) and through
``on_notice``, and every sender carries on at the limit learned from the 429.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import redis
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from tasks import errors, timeline
from tasks.client import TagMangoClient
from tasks.credentials import Credential
from tasks.defaults import DEFAULT_CONNECT_TIMEOUT_S
from tasks.limiter import RateLimiter, credential_key
from tasks.lua import Rider
from tasks.settings import Settings

log = logging.getLogger("tagmango.gateway")

T = TypeVar("T")
Call = Callable[[TagMangoClient], T]

#: An admission is used for a request that leaves this soon after it; later (the sender first waited for
#: something else) the request is admitted again, so that what the limiter counts is the request's flight.
FRESH_ADMISSION_S = 1.0
#: Attempts of one read (reads are idempotent) when TagMango answers 429/5xx or times out.
READ_ATTEMPTS = 6
#: A blocked sender says why it waits at most this often.
WAIT_NOTE_EVERY_S = 5.0


class Throttled(errors.TransientApiError):
    """Our own limiter had no room for longer than the sender may wait; nothing was sent."""


@dataclass(frozen=True)
class Pass:
    """The limiter's admission of one request that has not left yet (hand it to ``Door.send``)."""

    flight: str
    at: float  # time.monotonic() when admitted


@dataclass(frozen=True)
class Wait:
    """No admission now: try again after ``seconds``; ``cooling`` when a 429's cool-down is the reason."""

    seconds: float
    cooling: bool = False
    #: The hash field ``try_admit`` was asked to read, when present (the reason nothing was admitted).
    read: str | None = None
    #: The answer of ``try_admit``'s ``then`` rider when it refused to go on (the reason nothing was admitted).
    stopped: object = None


#: Called with (seconds, why) while a sender waits for the limiter; with the notice text after a 429 with room.
OnWait = Callable[[float, str], None]
OnNotice = Callable[[str], None]


class Door:
    """TagMango for one credential: the client, the shared budget, the retries. Thread-safe."""

    def __init__(self, gateway: Gateway, cred: Credential) -> None:
        self.cred = cred
        self.key = credential_key(cred.api_url, cred.host, cred.token)
        self._gateway = gateway
        self._limiter = gateway._limiter
        self._client = TagMangoClient(cred.api_url, cred.token, cred.host, timeout=gateway.timeout,
                                      max_connections=gateway.max_connections, transport=gateway.transport)
        #: Requests this process sent through the door, for a command's progress line.
        self.sent = 0
        self._noticed = False  # the notice of a 429 with room went to an ``on_notice`` already

    def __repr__(self) -> str:
        return f"Door({self.cred!r})"

    @property
    def limit(self) -> int:
        """The budget per window now: the configured one, or the lower one learned from a 429."""
        return self._limiter.effective_limit(self.key)

    @property
    def window(self) -> float:
        return self._limiter.window

    # -- admission ---------------------------------------------------------------------------
    def try_admit(self, read: tuple[str, str] | None = None, then: Rider | None = None) -> Pass | Wait:
        """One admission if the budget has room now and no cool-down is on. With ``read`` (a hash and a field),
        only while that field is absent: when present, ``Wait(0, read=value)``. With ``then`` (a rider), only if it
        goes on once the request can be admitted: when not, ``Wait(0, stopped=its answer)`` (``RateLimiter.admit``).
        """
        admission = self._limiter.admit(self.key, read, then)
        if admission.flight is not None:
            return Pass(admission.flight, time.monotonic())
        return Wait(admission.wait, admission.cooling, admission.read, admission.stopped)

    def admit(self, *, max_wait: float | None = None, on_wait: OnWait | None = None) -> Pass:
        """Wait until the budget has room (and out a cool-down); ``Throttled`` after ``max_wait`` seconds."""
        started = time.monotonic()
        said = 0.0
        while True:
            got = self.try_admit()
            if isinstance(got, Pass):
                return got
            waited = time.monotonic() - started
            if max_wait is not None and waited + got.seconds > max_wait:
                raise Throttled(f"no room in the rate limit for {self.cred.host} after {waited:.0f} s; nothing sent")
            if on_wait is not None and (got.seconds >= 1.0 or waited >= 1.0) and time.monotonic() - said >= \
                    WAIT_NOTE_EVERY_S:
                said = time.monotonic()
                why = (f"TagMango answered 429: cooling down, then {self.limit} per {self.window:g} s" if got.cooling
                       else f"the budget of {self.limit} per {self.window:g} s is in use (an import of this key?)")
                on_wait(got.seconds, why)
            time.sleep(min(got.seconds, 1.0) if on_wait is not None else got.seconds)

    def release(self, admitted: Pass) -> None:
        """An admission that was not used: its place in the budget is free at once."""
        self._limiter.release(self.key, admitted.flight)

    def done(self, admitted: Pass, answered_at: float) -> None:
        """A request ``send`` handed to ``answered`` (its answer back at ``answered_at``, ``time.monotonic()``) is
        over: it counts for one window more, no longer."""
        self._limiter.done(self.key, admitted.flight, time.monotonic() - answered_at)

    def done_rider(self, admitted: Pass, answered_at: float) -> Rider:
        """``done`` as a step of another script (``RowStore.finish``), in its round trip (tasks.lua)."""
        return self._limiter.done_rider(self.key, admitted.flight, time.monotonic() - answered_at)

    # -- requests ----------------------------------------------------------------------------
    def send(self, fn: Call[T], *, admitted: Pass | None = None, job_id: str | None = None,
             max_wait: float | None = None, on_wait: OnWait | None = None,
             on_notice: OnNotice | None = None, before: Callable[[], None] | None = None,
             prepared: bool = False, answered: Callable[[Pass, float], None] | None = None) -> T:
        """Make one request, ``fn(client)``: admitted (``admitted`` if still fresh, else now, waiting), counted in
        the budget until its answer is back. A 429 teaches the limiter and raises ``RateLimited``.

        ``before`` is called once the request is admitted, just before it leaves, *instead of* counting the request
        in ``job_id``'s timeline here (a row run checks its lease and counts the request in one round trip); if it
        raises, the admission is given back and nothing is sent. ``prepared``: ``admitted``'s own round trip did what
        ``before`` does, counting the request included (``try_admit(then=...)``), so ``before`` is called only if the
        request is admitted again.

        ``answered``: when the request comes back without an exception, it is handed the admission and the time
        (``time.monotonic()``) *instead of* the request being marked done here; the caller then owes ``done`` (or
        ``done_rider``) soon, as a row run does with its next write (tasks.runner). Failures are marked done here
        in any case."""
        if admitted is not None and time.monotonic() - admitted.at > FRESH_ADMISSION_S:
            self.release(admitted)
            admitted = None
        if admitted is None:
            admitted, prepared = self.admit(max_wait=max_wait, on_wait=on_wait), False
        if before is not None and not prepared:
            try:
                before()
            except BaseException:
                self.release(admitted)
                raise
        elif before is None and job_id is not None:
            timeline.count_sent(self._gateway.r, job_id, self._gateway.ttl_s)
        self.sent += 1
        try:
            result = fn(self._client)
        except errors.RateLimited as exc:
            self._refused(admitted, exc, job_id, on_notice)
            raise
        except BaseException:
            self._limiter.done(self.key, admitted.flight)
            raise
        if answered is not None:
            answered(admitted, time.monotonic())
        else:
            self._limiter.done(self.key, admitted.flight)
        return result

    def read(self, fn: Call[T], *, attempts: int = READ_ATTEMPTS, on_wait: OnWait | None = None,
             on_notice: OnNotice | None = None) -> T:
        """``send`` for a read: transient failures (429, 5xx, timeouts) are tried again, up to ``attempts``
        times; a 429 is waited out at the admission (the limiter's cool-down), with ``on_wait`` saying so."""
        for attempt in Retrying(retry=retry_if_exception_type(errors.TransientApiError), reraise=True,
                                wait=wait_exponential_jitter(initial=0.5, max=20.0),
                                stop=stop_after_attempt(attempts)):
            with attempt:
                return self.send(fn, on_wait=on_wait, on_notice=on_notice)
        raise AssertionError("not reached")  # pragma: no cover

    def _refused(self, admitted: Pass, exc: errors.RateLimited, job_id: str | None,
                 on_notice: OnNotice | None) -> None:
        refusal = self._limiter.refused(self.key, admitted.flight,
                                        max(exc.retry_after or 0.0, self._limiter.window / 2))
        if job_id is not None:
            timeline.count_event(self._gateway.r, job_id, "429", "rate_limited", self._gateway.ttl_s)
            timeline.set_limit(self._gateway.r, job_id, refusal.learned / self._limiter.window, self._gateway.ttl_s)
        if refusal.counted >= refusal.limit_before:
            return
        text = (f"TagMango answered 429 for {self.cred.host} while only {refusal.counted} of our requests were in "
                f"its {self._limiter.window:g} s window (our budget: {refusal.limit_before}): its limit for this key "
                f"is lower, or another client uses the same key; carrying on at {refusal.learned} per "
                f"{self._limiter.window:g} s")
        if job_id is not None and timeline.add_notice(self._gateway.r, job_id, "shared_key", text,
                                                      self._gateway.ttl_s):
            log.warning("%s: %s", job_id, text)
        if on_notice is not None and not self._noticed:
            self._noticed = True
            on_notice(text)

    def close(self) -> None:
        self._client.close()


class Gateway:
    """The doors of one process, one per credential, over one limiter in Redis. Build it once per process
    (``Gateway.from_settings``) and share it between threads."""

    def __init__(self, r: redis.Redis, *, limit: int, window: float, max_flight: float, timeout: httpx.Timeout,
                 ttl_s: int = timeline.DEFAULT_TTL_S, transport: httpx.BaseTransport | None = None,
                 max_connections: int = 32) -> None:
        self.r = r
        #: Connections each credential's client may open: at least the rows a worker runs at once.
        self.max_connections = max_connections
        self.timeout = timeout
        self.transport = transport
        self.ttl_s = ttl_s
        self._limiter = RateLimiter(r, limit, window, max_flight=max_flight)
        self._doors: dict[str, Door] = {}
        self._by_cred: dict[Credential, Door] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, r: redis.Redis, settings: Settings, *,
                      transport: httpx.BaseTransport | None = None) -> Gateway:
        # A request whose sender died mid-flight counts until the longest a call can take (connect, write, read).
        timeout = httpx.Timeout(connect=DEFAULT_CONNECT_TIMEOUT_S, read=settings.http_read_timeout, write=10.0,
                                pool=10.0)
        return cls(r, limit=settings.rate_limit, window=settings.rate_window,
                   max_flight=settings.http_read_timeout + DEFAULT_CONNECT_TIMEOUT_S + 15.0, timeout=timeout,
                   ttl_s=int(settings.dead_letter_days * 86400), transport=transport,
                   max_connections=max(32, settings.worker_concurrency))

    @property
    def limit(self) -> int:
        return self._limiter.limit

    @property
    def window(self) -> float:
        return self._limiter.window

    def door(self, cred: Credential) -> Door:
        """The door of a credential (one per credential per process, with its pooled connections)."""
        door = self._by_cred.get(cred)  # a worker asks for every row: no hashing then
        if door is not None:
            return door
        key = credential_key(cred.api_url, cred.host, cred.token)
        with self._lock:
            if key not in self._doors:
                self._doors[key] = Door(self, cred)
            self._by_cred[cred] = self._doors[key]
            return self._doors[key]

    def close(self) -> None:
        with self._lock:
            for door in self._doors.values():
                door.close()
            self._doors.clear()
            self._by_cred.clear()
