"""The dispatcher: parked rows (tasks.park) go to the Celery queue when their rate-limit slot comes.

Every worker process runs one (started by the worker's start-up step, tasks.row_tasks); one of them at a time holds
the lock, renewing it every tick, so another takes over within seconds when its owner dies. A tick is one Lua call
for every target at once: per credential, slots are ``(window + typical flight) / limit`` apart (tasks.limiter),
none during a 429 cool-down or while the budget is full. A row goes out ``LEAD_S`` ahead of its slot (at least
``LEAD_S - TICK_S``: ticks are ``TICK_S`` apart at least; the worker waits for the slot). Keys::

    tm:dispatch:lock   string   the leader's id (expires unless renewed)

It reads and pops the park's keys (tasks.park) and reads the limiter's (tasks.limiter) and the row store's
(tasks.rowstore, a row's attempts and generation), each named by its module.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import NamedTuple

import redis
from kombu.exceptions import OperationalError

from tasks.limiter import DEFAULT_FLIGHT_S
from tasks.limiter import keys as rate_keys
from tasks.park import LATER_OFFSET, TARGETS, WAKE, Slot, credit_key, park_key, park_later, parse
from tasks.rowstore import RowStore

log = logging.getLogger("tagmango.dispatch")

LOCK = "tm:dispatch:lock"
#: Rows are published this long before their slot (they travel through the queue meanwhile).
LEAD_S = 0.05
#: A busy dispatcher ticks at most this often (each tick hands out every row whose slot is less than ``LEAD_S``
#: away: with 16 keys at 12/s a few rows per tick and one publish for them, not a tick and a publish per row); an
#: idle one at least this rarely.
TICK_S = 0.02
IDLE_S = 1.0
#: The dispatcher lock lives this long unless its owner renews it (every tick).
LOCK_TTL_S = 5.0
#: Most rows one target may hand out in one tick.
BATCH = 50


class Dispatched(NamedTuple):
    """A row handed out: what its task message carries, plus its attempts so far (Celery's "retries", for Flower)."""

    op: str
    job_id: str
    row_id: str
    title: str
    gen: int
    slot: Slot
    attempts: int


#: Publishes handed-out rows (as Celery messages, in a worker).
PublishRows = Callable[[list[Dispatched]], None]
#: Opens a connection to the broker and yields the ``PublishRows`` that uses it (one per spell as the leader).
Publisher = Callable[[], AbstractContextManager[PublishRows]]


_DISPATCH = """
-- KEYS: the dispatcher lock, the targets hash, then per target (7 each): park, credit, next slot, flight log,
-- learned limit, paused-until, typical flight.
-- ARGV: lock owner, lock ttl ms, window us, configured limit, lead us, batch, default flight us, the prefix and
-- suffix around a job id of its rows key, then of its gen key (tasks.rowstore), then per target (2 each): 1 paced
-- / 0 unpaced (no credential for it in this process), target id.
-- Returns {now, wake, then per row handed out: target index, member, slot us, generation, attempts so far}, or
-- {-1} when the lock is not ours. Job keys are built here from the member: one Redis, as everywhere.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
local window, configured, lead = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local batch, default_flight = tonumber(ARGV[6]), tonumber(ARGV[7])
local rows_key, gen_key = {ARGV[8], ARGV[9]}, {ARGV[10], ARGV[11]}
local offset = OFFSET
local out = {now, 0}
local wake = now + 1000000
for i = 0, (#KEYS - 2) / 7 - 1 do
  local b = 2 + i * 7
  local park, credit, slot, flog = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4]
  local learned_key, paused_key, flight_key = KEYS[b + 5], KEYS[b + 6], KEYS[b + 7]
  local paced, target = ARGV[12 + 2 * i] == '1', ARGV[13 + 2 * i]
  local take, next_at, nxt, interval = batch, now + 50000, now, 0
  if paced then
    take = 0
    local limit = configured
    local learned = tonumber(redis.call('GET', learned_key) or '0')
    if learned > 0 and learned < limit then limit = learned end
    local flight = tonumber(redis.call('GET', flight_key) or default_flight)
    interval = math.floor((window + flight) / limit)
    nxt = math.max(tonumber(redis.call('GET', slot) or '0'), now)
    local paused = tonumber(redis.call('GET', paused_key) or '0')
    local room = limit - redis.call('ZCOUNT', flog, '(' .. (now - window), '+inf')
    if now < paused then
      next_at = paused
    elseif room <= 0 then
      next_at = now + 50000
    else
      if nxt <= now + lead then take = math.min(math.floor((now + lead - nxt) / interval) + 1, room, batch) end
      next_at = nxt + take * interval - lead
    end
  end
  local credits = math.min(tonumber(redis.call('GET', credit) or '0'), batch)
  if credits > 0 then redis.call('DEL', credit) end
  local popped = {}
  if take + credits > 0 then
    popped = redis.call('ZRANGEBYSCORE', park, '-inf', now - offset, 'LIMIT', 0, take + credits)
    if #popped < take + credits then
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', park, 0, '+inf', 'LIMIT', 0, take + credits - #popped)) do
        popped[#popped + 1] = m
      end
    end
  end
  local paced_taken = 0
  if paced then paced_taken = math.min(take, #popped) end
  if #popped > 0 then redis.call('ZREM', park, unpack(popped)) end
  for j, m in ipairs(popped) do
    local at = now
    if j <= paced_taken then at = nxt + (j - 1) * interval end
    local _, _, job, row = string.find(m, '^[^\\31]*\\31([^\\31]*)\\31([^\\31]*)\\31')
    job, row = job or '', row or ''
    -- The attempts the row has made so far: Celery's "retries" of its message, which Flower shows.
    local retries, raw = 0, redis.call('HGET', rows_key[1] .. job .. rows_key[2], row)
    if raw then
      local ok, rec = pcall(cjson.decode, raw)
      if ok and type(rec) == 'table' and tonumber(rec['attempts']) then retries = tonumber(rec['attempts']) end
    end
    out[#out + 1] = i
    out[#out + 1] = m
    out[#out + 1] = at
    out[#out + 1] = redis.call('HGET', gen_key[1] .. job .. gen_key[2], row) or '0'
    out[#out + 1] = retries
  end
  if paced_taken > 0 then redis.call('SET', slot, nxt + paced_taken * interval, 'EX', 3600) end
  local first = redis.call('ZRANGE', park, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('HDEL', KEYS[2], target)
  else
    local score = tonumber(first[2])
    local due_at = now
    if score < 0 and score + offset > now and redis.call('ZCOUNT', park, 0, '+inf') == 0 then
      due_at = score + offset  -- only rows waiting for their not-before time
    end
    wake = math.min(wake, math.max(next_at, due_at))
  end
end
out[2] = wake
return out
""".replace("OFFSET", str(LATER_OFFSET))


class Dispatcher:
    """Hands parked rows to the Celery queue when their slot comes (one process at a time, see the module doc).

    ``resolve(api_url, host)`` returns the credential key the workers' limiter uses for a target, or None when
    this process has no credential for it (its rows are handed out unpaced; the worker dead-letters them).
    ``publisher`` is what ``run`` publishes with (tasks.row_tasks gives Celery's); without one, only ``tick`` by hand.
    """

    def __init__(self, store: RowStore, resolve: Callable[[str, str], str | None], *, limit: int, window: float,
                 publisher: Publisher | None = None) -> None:
        self.store, self.r, self.resolve, self.publisher = store, store.r, resolve, publisher
        self.limit, self.window = limit, window
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._script = self.r.register_script(_DISPATCH)
        self._targets: dict[str, tuple[str, str, str | None]] = {}  # target -> (api_url, host, cred key)
        self._targets_read = 0.0
        self._stop = threading.Event()

    # -- one tick ----------------------------------------------------------------------------------
    def targets(self) -> list[tuple[str, str, str, str | None]]:
        """(target, api url, host, credential key) of every target with parked rows (read at most once a second)."""
        now = time.monotonic()
        if now - self._targets_read > 1.0:
            fresh = {}
            for target, raw in self.r.hgetall(TARGETS).items():
                if target in self._targets:
                    fresh[target] = self._targets[target]
                    continue
                info = json.loads(raw)
                fresh[target] = (info["api_url"], info["host"], self.resolve(info["api_url"], info["host"]))
            self._targets, self._targets_read = fresh, now
        return [(t, *v) for t, v in self._targets.items()]

    def tick(self, publish_rows: PublishRows) -> float | None:
        """Hand out what is due; returns seconds until the next tick, None when the lock is not ours."""
        targets = self.targets()
        keys = [LOCK, TARGETS]
        args = [self.owner, int(LOCK_TTL_S * 1000), int(self.window * 1e6), self.limit, int(LEAD_S * 1e6), BATCH,
                int(DEFAULT_FLIGHT_S * 1e6), *RowStore.key_around("rows"), *RowStore.key_around("gen")]
        for target, _api_url, _host, cred in targets:
            k = rate_keys(cred or f"none:{target}")
            keys += [park_key(target), credit_key(target), k["slot"], k["log"], k["limit"], k["paused"], k["flight"]]
            args += [1 if cred else 0, target]
        out = self._script(keys=keys, args=args)
        if out[0] == -1:
            return None
        now_us, wake_us = int(out[0]), int(out[1])
        rows = []
        for i in range(2, len(out), 5):
            target = targets[int(out[i])][0]
            op, job_id, row_id, title = parse(out[i + 1])
            rows.append(Dispatched(op, job_id, row_id, title, int(out[i + 3]), Slot(int(out[i + 2]) / 1e6, target),
                                   int(out[i + 4])))
        if rows:
            try:
                publish_rows(rows)  # one pipeline (tasks.row_tasks.send)
            except Exception:
                # Whether any of them reached Redis is unknown: park them all again. Where one did arrive, the row
                # gets two messages of one generation: the second finds it final, or leased and tries again later.
                self.put_back(rows)
                raise
        if not targets:
            return IDLE_S
        return min(max((wake_us - now_us) / 1e6, TICK_S), IDLE_S)

    def put_back(self, rows: list[Dispatched]) -> None:
        """Rows taken out of the park whose message could not be published (Redis going away): park them again,
        due now. If that fails too, the recovery sweeper finds them (neither parked nor in the broker)."""
        try:
            for row in rows:
                park_later(self.store, row.job_id, (row.op, row.row_id, row.title), 0.0)
        except redis.RedisError as exc:
            log.warning("%d dispatched row(s) could not be parked again (%s); the sweeper will find them",
                        len(rows), exc)

    def take_lock(self) -> bool:
        """Become the dispatcher, or stay it: True when the lock is (now) ours."""
        return bool(self.r.set(LOCK, self.owner, nx=True, px=int(LOCK_TTL_S * 1000))) or \
            self.r.get(LOCK) == self.owner

    # -- the thread --------------------------------------------------------------------------------
    def run(self) -> None:
        if self.publisher is None:
            raise RuntimeError("a dispatcher without a publisher can only tick by hand")
        leader = False
        while not self._stop.is_set():
            try:
                if not leader:
                    leader = self.take_lock()
                    if not leader:
                        self._stop.wait(IDLE_S)
                        continue
                with self.publisher() as publish_rows:
                    while leader and not self._stop.is_set():
                        wait = self.tick(publish_rows)
                        if wait is None:
                            leader = False
                        elif wait >= 0.25:
                            self.r.blpop([WAKE], timeout=wait)
                        else:
                            time.sleep(wait)
            except (redis.ConnectionError, OperationalError) as exc:  # Redis restarting: try again shortly
                log.info("dispatcher paused, Redis unavailable: %s", exc)
                leader = False
                self._stop.wait(IDLE_S)
            except Exception:
                log.exception("dispatcher tick failed")
                leader = False
                self._stop.wait(IDLE_S)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="tagmango-dispatch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
