"""The global rate limiter: one schedule per credential, shared by every worker through Redis.

GCRA (the generic cell rate algorithm) with reservations: each call takes the next free slot on the
credential's schedule, slots are ``window / limit`` seconds apart (spread evenly, never a burst),
and the clock is Redis's own (``TIME``), so workers on different machines agree. A caller whose slot is
near sleeps until it; one whose slot is far away re-schedules its task instead of holding a worker
(``Reservation.defer``) and keeps the slot it reserved, so it cannot be starved by newer tasks.

A 429 means our view of the budget was wrong (another client on the same key, a smaller limit than
documented): ``cool_down`` pushes the whole schedule back, so every worker of that credential pauses
together, and halves the credential's rate, which then recovers by 10% per window without a 429
(additive-increase/multiplicative-decrease, as TCP does). Callers that reserved a slot before the 429
and were sleeping towards it see ``cooled_since`` and re-schedule instead of sending.

Slots alone do not bound what the API counts: a task that comes back late for its slot (a busy worker,
a slow timer) sends late, next to the requests of later slots. So every send also passes ``admit``: a
log of the credential's actual send times in Redis, which refuses a send that would make more than
``limit`` in any window (plus a small margin for the window's edges). A refused caller takes a new slot.
Slots keep requests evenly spread; the log is the hard ceiling.

The keys are ``tm:rate:{sha256(api url | host | sha256(token))}...``: never the token itself.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

import redis

_FACTOR = """
local function factor(now, window)
  local f = tonumber(redis.call('GET', KEYS[2]) or '1')
  if f >= 1 then return 1 end
  local last = tonumber(redis.call('GET', KEYS[3]) or '0')
  return math.min(1, f * math.pow(1.1, (now - last) / window))
end
"""

_RESERVE = _FACTOR + """
-- KEYS: next free slot (us), rate factor, time of the last cool-down (us)
-- ARGV: interval us, horizon us (max reservation ahead), ttl s, window us
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt < now then nxt = now end
local wait = nxt - now
if wait > tonumber(ARGV[2]) then return {0, wait, now} end
local step = math.floor(tonumber(ARGV[1]) / factor(now, tonumber(ARGV[4])))
redis.call('SET', KEYS[1], nxt + step, 'EX', tonumber(ARGV[3]))
return {1, wait, now}
"""

_COOL_DOWN = _FACTOR + """
-- KEYS as above, then the paused-until time (us); ARGV: pause us, ttl s, window us
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if now - last > 1000000 then  -- 429s arriving together halve the rate once
  redis.call('SET', KEYS[2], tostring(math.max(0.05, factor(now, tonumber(ARGV[3])) / 2)), 'EX', tonumber(ARGV[2]))
  redis.call('SET', KEYS[3], now, 'EX', tonumber(ARGV[2]))
end
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local resume = now + tonumber(ARGV[1])
if nxt < resume then redis.call('SET', KEYS[1], resume, 'EX', tonumber(ARGV[2])) end
local paused = tonumber(redis.call('GET', KEYS[4]) or '0')
if paused < resume then redis.call('SET', KEYS[4], resume, 'EX', tonumber(ARGV[2])) end
return resume
"""


_ADMIT = """
-- KEYS: send log (sorted set of send times, us), paused-until time (us)
-- ARGV: window us (with margin), cap, ttl s, unique member
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < paused then return {0, paused - now} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + tonumber(ARGV[1]) - now}
end
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[4])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, 0}
"""

#: The send log counts a window this much longer than the API's (sends on the window's very edge, a few ms
#: between our send and TagMango's clock); slots are spaced to fit that longer window.
EDGE_MARGIN_S = 0.05


def credential_key(api_url: str, host: str, token: str) -> str:
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    return hashlib.sha256(f"{api_url.rstrip('/')}|{host.lower()}|{token_hash}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Reservation:
    granted: bool  # a slot was reserved for this caller
    wait: float  # seconds until the slot (or, when not granted, until the schedule is free enough)
    at: float = 0.0  # Redis time of the reservation (seconds)


class RateLimiter:
    def __init__(self, client: redis.Redis, limit: int = 117, window: float = 10.0,
                 horizon: float = 30.0) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("the rate limit needs limit >= 1 and window > 0")
        self.r = client
        self.limit = limit
        self.interval = (window + EDGE_MARGIN_S) / limit
        self.window = window
        self.horizon = horizon
        self._reserve = client.register_script(_RESERVE)
        self._cool = client.register_script(_COOL_DOWN)
        self._admit = client.register_script(_ADMIT)

    @staticmethod
    def keys(cred: str) -> list[str]:
        return [f"tm:rate:{cred}", f"tm:rate:{cred}:factor", f"tm:rate:{cred}:cooled"]

    def admit(self, cred: str) -> float:
        """Record a send now if the window has room and no cool-down is on: 0.0; otherwise the seconds until
        then (nothing recorded)."""
        ok, wait_us = self._admit(keys=[f"tm:rate:{cred}:sent", f"tm:rate:{cred}:paused"], args=[
            int((self.window + EDGE_MARGIN_S) * 1e6), self.limit, 3600, uuid.uuid4().hex[:12]])
        return 0.0 if ok else max(int(wait_us) / 1e6, 0.001)

    def reserve(self, cred: str) -> Reservation:
        """Take the next slot if it is within the horizon; otherwise only report how far off it is."""
        granted, wait_us, now_us = self._reserve(
            keys=self.keys(cred), args=[int(self.interval * 1e6), int(self.horizon * 1e6), 3600, int(self.window * 1e6)])
        return Reservation(bool(granted), int(wait_us) / 1e6, int(now_us) / 1e6)

    def cooled_since(self, cred: str) -> float:
        """Redis time (seconds) of the credential's last cool-down, 0 if none."""
        return int(self.r.get(self.keys(cred)[2]) or 0) / 1e6

    def rate_factor(self, cred: str) -> float:
        return float(self.r.get(self.keys(cred)[1]) or 1.0)

    def acquire(self, cred: str, max_wait: float = 120.0) -> None:
        """Block until a slot on the schedule is ours and the send log admits it."""
        deadline = time.monotonic() + max_wait
        while True:
            reservation = self.reserve(cred)
            if reservation.granted:
                time.sleep(reservation.wait)
                if self.admit(cred) == 0.0:
                    return
                continue  # the window is full of late sends: take the next slot
            if time.monotonic() + reservation.wait > deadline:
                raise TimeoutError("rate limiter wait too long")
            time.sleep(min(reservation.wait, 5.0))

    def acquire_now(self, cred: str, max_wait: float = 120.0) -> None:
        """Send as soon as the window has room, ahead of the schedule: for the calls of an operation already
        under way (the pages of a lookup, the create after it), which must not queue behind every slot
        reserved for other rows. The send log still caps the window; a scheduled row it displaces takes a
        new slot."""
        deadline = time.monotonic() + max_wait
        while True:
            wait = self.admit(cred)
            if wait == 0.0:
                return
            if time.monotonic() + wait > deadline:
                raise TimeoutError("rate limiter wait too long")
            time.sleep(wait)

    def cool_down(self, cred: str, seconds: float) -> None:
        """Pause every worker of this credential for ``seconds`` (after a 429)."""
        self._cool(keys=[*self.keys(cred), f"tm:rate:{cred}:paused"], args=[int(seconds * 1e6), 3600, int(self.window * 1e6)])
