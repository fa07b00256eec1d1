"""The global rate limiter: one budget per credential, shared by every worker through Redis.

**The ceiling: every request counted for its whole flight.** TagMango counts a request at some instant
between the moment we send it and the moment its answer comes back; which instant, we cannot know (its
clock, its queues, a stalled network). So the limiter keeps a *flight log* per credential: a request is
admitted at time *s* (Redis's clock, before it leaves) and marked done at *e* (after its answer, or its
failure, came back), and until then it counts as in flight. A new request is admitted only while::

    in flight + done after (now - window)  <  limit

Whatever instant of [s, e] TagMango counts each request at, no window of TagMango's can then hold more
than ``limit`` of them: for any window, take the request of it admitted last; every other request in that
window was admitted before it and ended inside the window or later, so it was in flight or done after
(admission - window) when that last one was admitted. No margin below TagMango's 120 is needed, and no
delay between our clock and TagMango's can break it (only durations matter, and [s, e] contains the real
flight). A request whose worker died mid-flight counts until ``max_flight`` after it was admitted.

**The pace: evenly spread slots** (``tasks.dispatch`` hands rows to workers at their slot): slots are
``(window + typical flight) / limit`` apart, the flight measured per credential, so the pace matches
what the ceiling lets through and rows rarely wait at it.

**Finding the real limit.** A 429 means TagMango's limit for this key is lower than ours (or someone else
uses the key). From the flight log we know which of our requests TagMango had certainly counted in its
window when it refused (those sent after ``refused answer - window`` and answered before the refused
request left): that count is at most its limit, so it becomes the credential's limit (kept for
``LEARNED_TTL_S`` after the last 429, then the configured one is tried again). Every worker of the
credential also pauses for a shared cool-down. Refused requests stay in the log (TagMango may count them)
but not in that estimate. When that count is tiny (``LEARNED_FLOOR`` of the configured limit or less) the
window was full of someone else's requests: the first time, the limit is kept and the pause is a whole window
(theirs age out); a second time within ``LEARNED_TTL_S``, the floor is learned.

Keys (``{c}`` = ``sha256(api url | host | sha256(token))``, never the token): ``tm:rate:{c}`` next free
slot (us); ``:log`` the flight log (zset, member ``<admitted us>:<id>`` or ``r:...`` once refused, score =
end us, or admission + max flight while in flight); ``:limit`` the learned limit; ``:paused`` paused
until (us); ``:cooled`` time of the last 429 (us); ``:flight`` typical flight (us); ``:unsure`` a 429 taught
nothing once.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from tasks import lua
from tasks.lua import Rider

#: How long a limit learned from a 429 is kept after the last 429 before the configured one is tried again.
LEARNED_TTL_S = 3600
#: A learned limit is never below this share of the configured one (a 429 on a key we had barely used says
#: little about its limit: someone else's traffic, most likely).
LEARNED_FLOOR = 0.1
#: Flight assumed for pacing until requests of the credential have been timed.
DEFAULT_FLIGHT_S = 0.5
#: Keys of idle credentials expire after this long.
TTL_S = 3600

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

_LIMIT = """
local function limit_of(learned_key, configured)
  local learned = tonumber(redis.call('GET', learned_key) or '0')
  if learned > 0 and learned < configured then return learned end
  return configured
end
"""

_ADMIT = """
-- KEYS: flight log, learned limit, paused-until, [a hash to read one field of]
-- ARGV: window us, configured limit, max flight us, unique id, ttl s, [the field]
-- With a hash field (a row's ledger entry, tasks.runner): admitted only while the field is absent; when present,
-- its value comes back (last) instead, not admitted: the caller looks at it first.
-- Riding (tasks.lua, ``admit(then=...)``): once the request can be admitted, the rider runs (a row's start); it
-- answers whether to go on and what to hand back; admitted only if it goes on, its answer last either way.
if host_keys > 3 then
  local read = redis.call('HGET', KEYS[4], ARGV[6])
  if read then return {0, 0, 0, read} end
end
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if now < paused then return {0, paused - now, 1} end
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit_of(KEYS[2], tonumber(ARGV[2])) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local ends = tonumber(first[2])
  if ends > now then return {0, 50000, 0} end  -- every counted request is still in flight: look again soon
  return {0, ends + window - now + 1, 0}
end
if riding then
  local go, answer = rider(rider_keys, rider_args)
  if not go then return {0, 0, 0, false, answer or ''} end
end
local member = string.format('%.0f', now) .. ':' .. ARGV[4]
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), member)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return {1, member}
"""
ADMIT = _NOW + _LIMIT + lua.NO_RIDER + _ADMIT

DONE = _NOW + """
-- KEYS: flight log, typical flight; ARGV: member, ttl s, us since the answer came back (marked done later)
-- Plain ZADD: a request that outlived its assumed longest flight (and dropped out of the log) counts again,
-- until now + window.
redis.call('ZADD', KEYS[1], now, ARGV[1])
local took = math.max(now - tonumber(string.match(ARGV[1], '^(%d+)')) - tonumber(ARGV[3] or '0'), 0)
local typical = tonumber(redis.call('GET', KEYS[2]) or tostring(took))
redis.call('SET', KEYS[2], math.floor(typical * 0.9 + took * 0.1), 'EX', tonumber(ARGV[2]))
return now
"""

REFUSED = _NOW + _LIMIT + """
-- KEYS: flight log, learned limit, paused-until, last 429, next slot, "said nothing" mark
-- ARGV: member, window us, configured limit, pause us, learned ttl s, ttl s
local window = tonumber(ARGV[2])
local sent = tonumber(string.match(ARGV[1], '^(%d+)'))
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now, 'r:' .. ARGV[1])
-- Requests TagMango certainly counted in the window in which it refused this one.
local counted = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now - window, sent)) do
  local started = tonumber(string.match(m, '^(%d+)'))
  if started and started >= now - window then counted = counted + 1 end
end
local limit = limit_of(KEYS[2], tonumber(ARGV[3]))
local floor = math.ceil(tonumber(ARGV[3]) * FLOOR)
local learned = limit
local pause = tonumber(ARGV[4])
if counted <= floor and redis.call('SET', KEYS[6], 1, 'NX', 'EX', tonumber(ARGV[5])) then
  -- Hardly any of ours in its window: the window was full of someone else's requests (another client, a run just
  -- before ours). That says nothing about the limit: keep it, and pause a whole window so theirs age out.
  pause = math.max(pause, window)
else
  learned = math.max(floor, math.min(counted, limit))
  redis.call('SET', KEYS[2], learned, 'EX', tonumber(ARGV[5]))
end
local resume = now + pause
if tonumber(redis.call('GET', KEYS[3]) or '0') < resume then
  redis.call('SET', KEYS[3], resume, 'EX', tonumber(ARGV[6]))
end
redis.call('SET', KEYS[4], now, 'EX', tonumber(ARGV[6]))
if tonumber(redis.call('GET', KEYS[5]) or '0') < resume then
  redis.call('SET', KEYS[5], resume, 'EX', tonumber(ARGV[6]))
end
return {learned, counted, limit}
""".replace("FLOOR", str(LEARNED_FLOOR))


def _text(value: object) -> object:
    """A script's reply element as text (bytes decoded; lists element by element, None as is)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


def credential_key(api_url: str, host: str, token: str) -> str:
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    return hashlib.sha256(f"{api_url.rstrip('/')}|{host.lower()}|{token_hash}".encode()).hexdigest()[:24]


def keys(cred: str) -> dict[str, str]:
    base = f"tm:rate:{cred}"
    return {"slot": base, "log": f"{base}:log", "limit": f"{base}:limit", "paused": f"{base}:paused",
            "cooled": f"{base}:cooled", "flight": f"{base}:flight", "unsure": f"{base}:unsure"}


@dataclass(frozen=True)
class Admission:
    """``flight`` is the admitted request's entry in the flight log (hand it to ``done``/``refused``); when not
    admitted it is None, ``wait`` says how long until the budget may have room and ``cooling`` whether a 429's
    cool-down is the reason."""

    flight: str | None
    wait: float = 0.0
    cooling: bool = False
    #: The hash field ``admit`` was asked to read, when present (then nothing was admitted); else None.
    read: str | None = None
    #: The answer of ``admit``'s ``then`` rider when it refused to go on (then nothing was admitted); else None.
    stopped: object = None


@dataclass(frozen=True)
class Refusal:
    """What a 429 taught: the credential's limit from now on, the requests TagMango had certainly counted in its
    window, and the limit we were keeping to before."""

    learned: int
    counted: int
    limit_before: int


class RateLimiter:
    def __init__(self, client: redis.Redis, limit: int = 120, window: float = 10.0, max_flight: float = 60.0) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("the rate limit needs limit >= 1 and window > 0")
        self.r = client
        self.limit = limit
        self.window = window
        self.max_flight = max_flight
        self._admit = client.register_script(ADMIT)
        self._admit_riding: dict[str, Any] = {}
        self._done = client.register_script(DONE)
        self._refused = client.register_script(REFUSED)

    # -- the ceiling -----------------------------------------------------------------------------
    def admit(self, cred: str, read: tuple[str, str] | None = None, then: Rider | None = None) -> Admission:
        """Admit one request now if the budget has room and no cool-down is on (nothing recorded otherwise).

        ``read`` (a hash and a field) makes it a gate, in the same round trip: admitted only while that field is
        absent; when it is present its value comes back (``Admission.read``, wait 0) and nothing is admitted. A
        row run asks with its ledger entry (tasks.runner): a row done already takes no place in the budget.

        ``then`` (a rider, tasks.lua) runs in the same round trip once the request can be admitted, before it is: a
        row run saves the start of its attempt that way. Its Lua returns two values, whether to go on and an answer;
        when it does not go on, nothing is admitted and the answer comes back (``Admission.stopped``)."""
        k = keys(cred)
        script_keys = [k["log"], k["limit"], k["paused"]]
        args: list = [int(self.window * 1e6), self.limit, int(self.max_flight * 1e6), uuid.uuid4().hex[:10], TTL_S]
        if read is not None:
            script_keys.append(read[0])
            args.append(read[1])
        script = self._admit
        if then is not None:
            script = self._admit_riding.get(then.name)
            if script is None:
                script = self._admit_riding[then.name] = self.r.register_script(
                    lua.with_rider(then.body, _NOW + _LIMIT + _ADMIT, first=False))
            lua.append(then, script_keys, args)
        answer = script(keys=script_keys, args=args)
        if answer[0]:
            flight = answer[1]
            return Admission(flight if isinstance(flight, str) else flight.decode())
        if len(answer) > 4:
            return Admission(None, 0.0, stopped=_text(answer[4]))
        value = answer[3] if len(answer) > 3 else None
        return Admission(None, max(int(answer[1]) / 1e6, 0.001), bool(int(answer[2])), read=_text(value))

    def done(self, cred: str, flight: str, late: float = 0.0) -> None:
        """The request's answer (or failure) came back (``late`` seconds ago: not counted in the typical flight):
        it counts until now + window, no longer."""
        rider = self.done_rider(cred, flight, late)
        self._done(keys=list(rider.keys), args=list(rider.args))

    def done_rider(self, cred: str, flight: str, late: float = 0.0) -> Rider:
        """``done`` as a step of another script, run in its round trip (a row's ``RowStore.finish``)."""
        k = keys(cred)
        return Rider("limiter_done", DONE, (k["log"], k["flight"]), (flight, TTL_S, int(max(late, 0.0) * 1e6)))

    def release(self, cred: str, flight: str) -> None:
        """An admitted request that was not sent after all: give its place back."""
        self.r.zrem(keys(cred)["log"], flight)

    def refused(self, cred: str, flight: str, pause: float) -> Refusal:
        """TagMango answered 429: learn its limit from what it had counted, pause every sender of the credential
        for ``pause`` seconds."""
        k = keys(cred)
        learned, counted, before = self._refused(
            keys=[k["log"], k["limit"], k["paused"], k["cooled"], k["slot"], k["unsure"]],
            args=[flight, int(self.window * 1e6), self.limit, int(pause * 1e6), LEARNED_TTL_S, TTL_S])
        return Refusal(int(learned), int(counted), int(before))

    # -- what the dashboard and tests read ----------------------------------------------------------
    def effective_limit(self, cred: str) -> int:
        learned = int(self.r.get(keys(cred)["limit"]) or 0)
        return learned if 0 < learned < self.limit else self.limit

    def cooled_since(self, cred: str) -> float:
        """Redis time (seconds) of the credential's last 429, 0 if none."""
        return int(self.r.get(keys(cred)["cooled"]) or 0) / 1e6
