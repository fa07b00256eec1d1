"""Rows wait for their turn in Redis, not in the workers: parking, and a dispatcher that publishes them when due.

**Why.** With one Celery queue for every credential, a key's backlog sat in front of every other key's rows:
workers took rows that were not due yet and held them (threads, countdown messages in memory) while rows
of other keys waited behind them. Now a row that is ready but not due is *parked* in Redis, per target
(API URL + whitelabel host), and the queue only ever holds rows whose rate-limit slot has come. Each
credential gets its own pace; a key with 10,000 rows waiting slows no other key.

**Parking.** ``tm:park:{target}`` is a sorted set of ``op \\x1f job \\x1f row \\x1f title`` (a row is parked at
most once). New rows (``tasks.producer.publish``) score their park time, so they leave in input order;
rows put back by a worker (a retry after its backoff, a rate-limit wait) score ``not-before - LATER_OFFSET``,
a negative number that sorts before every new row once due: a row already under way goes first.
``tm:park:targets`` maps each target with parked rows to its API URL and host. A parked row is not lost and
not stuck: the recovery sweeper counts it as present (``tasks.recovery``).

**Dispatching.** Every worker process runs a dispatcher thread; one of them at a time (a Redis lock that
its owner renews, so another takes over within seconds when it dies) pops due rows in one Lua call per
tick, for every target at once: per credential, slots are ``(window + typical flight) / limit`` apart
(``tasks.limiter``), none while a 429 cool-down is on or the budget is full, and rows are published
(``LEAD_S`` ahead of their slot) with the row's current generation and ``slot_at = [slot, target]``.
A dispatched row that ends without sending (already done, dead-lettered unsent, a stale copy) hands its
slot back (``give_back``), so re-running a file of finished rows is not paced at 12 rows/s.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable

import redis

from tasks import operations
from tasks.ledger import target_id
from tasks.limiter import DEFAULT_FLIGHT_S
from tasks.limiter import keys as rate_keys

log = logging.getLogger("tagmango.dispatch")

TARGETS = "tm:park:targets"
WAKE = "tm:park:wake"
LOCK = "tm:dispatch:lock"
SEP = "\x1f"
#: Rows put back by a worker score ``not-before (us) - LATER_OFFSET``: below every new row, due when
#: ``score <= now - LATER_OFFSET``. New rows score their park time (us), always positive.
LATER_OFFSET = 4_000_000_000_000_000
#: Rows are published this long before their slot (they travel through the queue meanwhile).
LEAD_S = 0.05
#: A busy dispatcher looks again at least this often; an idle one at most this rarely.
TICK_S = 0.05
IDLE_S = 1.0
#: The dispatcher lock lives this long unless its owner renews it (every tick).
LOCK_TTL_S = 5.0
#: Most rows one target may hand out in one tick.
BATCH = 50


def park_key(target: str) -> str:
    return f"tm:park:{target}"


def credit_key(target: str) -> str:
    return f"tm:park:{target}:credit"


def member(op: str, job_id: str, row_id: str, title: str) -> str:
    return SEP.join((op, job_id, row_id, title.replace(SEP, " ")))


def parse(entry: str) -> tuple[str, str, str, str]:
    op, job_id, row_id, title = entry.split(SEP, 3)
    return op, job_id, row_id, title


def park(r: redis.Redis, api_url: str, host: str, job_id: str, rows: Iterable[tuple[str, str, str]],
         delay: float | None = None) -> int:
    """Park rows ``(op, row id, title)`` of a job for its target: new rows (``delay`` None) in order, or rows
    put back by a worker, due after ``delay`` seconds and ahead of new rows from then on. One round trip."""
    target = target_id(api_url, host)
    now_us = int(time.time() * 1e6)
    if delay is None:
        scores = {member(op, job_id, row_id, title): now_us + i for i, (op, row_id, title) in enumerate(rows)}
    else:
        due = now_us + int(max(delay, 0.0) * 1e6) - LATER_OFFSET
        scores = {member(op, job_id, row_id, title): due for op, row_id, title in rows}
    if not scores:
        return 0
    pipe = r.pipeline(transaction=True)
    items = list(scores.items())
    for start in range(0, len(items), 5000):
        pipe.zadd(park_key(target), dict(items[start:start + 5000]))
    pipe.hset(TARGETS, target, json.dumps({"api_url": api_url.rstrip("/"), "host": host.lower()}))
    pipe.rpush(WAKE, 1)
    pipe.ltrim(WAKE, 0, 0)
    pipe.execute()
    return len(scores)


def give_back(r: redis.Redis, target: str) -> None:
    """A dispatched row ended without sending: the dispatcher may hand its slot to the next row at once."""
    pipe = r.pipeline(transaction=False)
    pipe.incr(credit_key(target))
    pipe.expire(credit_key(target), 60)
    pipe.execute()


def parked_entries(r: redis.Redis, target: str, batch: int = 5000) -> Iterable[tuple[str, str, str, str]]:
    for entry, _score in r.zscan_iter(park_key(target), count=batch):
        yield parse(entry)


def parked_count(r: redis.Redis, target: str) -> int:
    return int(r.zcard(park_key(target)))


_DISPATCH = """
-- KEYS: the dispatcher lock, the targets hash, then per target (7 each): park, credit, next slot, flight log,
-- learned limit, paused-until, typical flight.
-- ARGV: lock owner, lock ttl ms, window us, configured limit, lead us, batch, default flight us, then per
-- target (2 each): 1 paced / 0 unpaced (no credential for it in this process), target id.
-- Returns {now, wake, then per row handed out: target index, member, slot us, generation, attempts so far}, or
-- {-1} when the lock is not ours. Job keys are built here from the member: one Redis, as everywhere.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
local window, configured, lead = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local batch, default_flight = tonumber(ARGV[6]), tonumber(ARGV[7])
local offset = OFFSET
local out = {now, 0}
local wake = now + 1000000
for i = 0, (#KEYS - 2) / 7 - 1 do
  local b = 2 + i * 7
  local park, credit, slot, flog = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4]
  local learned_key, paused_key, flight_key = KEYS[b + 5], KEYS[b + 6], KEYS[b + 7]
  local paced, target = ARGV[8 + 2 * i] == '1', ARGV[9 + 2 * i]
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
    local retries, raw = 0, redis.call('HGET', 'tm:job:' .. job .. ':rows', row)
    if raw then
      local ok, rec = pcall(cjson.decode, raw)
      if ok and type(rec) == 'table' and tonumber(rec['attempts']) then retries = tonumber(rec['attempts']) end
    end
    out[#out + 1] = i
    out[#out + 1] = m
    out[#out + 1] = at
    out[#out + 1] = redis.call('HGET', 'tm:job:' .. job .. ':gen', row) or '0'
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
    """

    def __init__(self, r: redis.Redis, broker_url: str, resolve, *, limit: int, window: float) -> None:  # noqa: ANN001
        self.r, self.broker_url, self.resolve = r, broker_url, resolve
        self.limit, self.window = limit, window
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._script = r.register_script(_DISPATCH)
        self._targets: dict[str, tuple[str, str, str | None]] = {}  # target -> (api_url, host, cred key)
        self._targets_read = 0.0
        self._stop = threading.Event()

    # -- one tick ----------------------------------------------------------------------------------
    def targets(self) -> list[tuple[str, str, str, str | None]]:
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

    def tick(self, publish_rows) -> float | None:  # noqa: ANN001
        """Hand out what is due; returns seconds until the next tick, None when the lock is not ours."""
        targets = self.targets()
        keys, args = [LOCK, TARGETS], [self.owner, int(LOCK_TTL_S * 1000), int(self.window * 1e6), self.limit,
                                       int(LEAD_S * 1e6), BATCH, int(DEFAULT_FLIGHT_S * 1e6)]
        for target, _api_url, _host, cred in targets:
            k = rate_keys(cred or f"none:{target}")
            keys += [park_key(target), credit_key(target), k["slot"], k["log"], k["limit"], k["paused"], k["flight"]]
            args += [1 if cred else 0, target]
        out = self._script(keys=keys, args=args)
        if out[0] == -1:
            return None
        now_us, wake_us = int(out[0]), int(out[1])
        rows, where = [], {}
        for i in range(2, len(out), 5):
            target, api_url, host, _cred = targets[int(out[i])]
            op, job_id, row_id, title = parse(out[i + 1])
            rows.append((op, job_id, row_id, title, int(out[i + 3]), [int(out[i + 2]) / 1e6, target], int(out[i + 4])))
            where[target] = (api_url, host)
        sent = 0
        try:
            for sent, row in enumerate(rows, start=1):  # noqa: B007 - counts what went out
                publish_rows([row])
        except Exception:
            self.put_back(rows[sent - 1 if sent else 0:], where)
            raise
        if not targets:
            return IDLE_S
        return min(max((wake_us - now_us) / 1e6, 0.005), IDLE_S)

    def put_back(self, rows: list, where: dict) -> None:
        """Rows taken out of the park whose message could not be published (Redis going away): park them again,
        due now. If that fails too, the recovery sweeper finds them (neither parked nor in the broker)."""
        try:
            for op, job_id, row_id, title, _gen, (_slot, target), _retries in rows:
                park(self.r, *where[target], job_id, [(op, row_id, title)], delay=0.0)
        except redis.RedisError as exc:
            log.warning("%d dispatched row(s) could not be parked again (%s); the sweeper will find them",
                        len(rows), exc)

    def take_lock(self) -> bool:
        return bool(self.r.set(LOCK, self.owner, nx=True, px=int(LOCK_TTL_S * 1000))) or \
            self.r.get(LOCK) == self.owner

    # -- the thread --------------------------------------------------------------------------------
    def run(self) -> None:
        from kombu.exceptions import OperationalError

        from tasks.celery_app import app

        leader = False
        while not self._stop.is_set():
            try:
                if not leader:
                    leader = self.take_lock()
                    if not leader:
                        self._stop.wait(IDLE_S)
                        continue
                with app.connection_for_write(self.broker_url) as conn, conn.Producer() as producer:
                    def publish_rows(rows: list) -> None:
                        send(app, producer, rows)

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
            except Exception:  # noqa: BLE001 - a bug must not stop the dispatcher; say what it was
                log.exception("dispatcher tick failed")
                leader = False
                self._stop.wait(IDLE_S)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="tagmango-dispatch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def task_id(job_id: str, row_id: str) -> str:
    """One Celery task id per row, across its retries (Flower shows one task per row)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tagmango:{job_id}/{row_id}"))


def send(app, producer, rows: list) -> None:  # noqa: ANN001
    """Publish dispatched rows ``(op, job id, row id, title, gen, slot_at, attempts)`` as Celery messages."""
    for op, job_id, row_id, title, gen, slot_at, attempts in rows:
        app.send_task(operations.get(op).task_name, args=(job_id, row_id, title), kwargs={"gen": gen, "slot_at": slot_at},
                      task_id=task_id(job_id, row_id), retries=attempts, producer=producer, ignore_result=True,
                      add_to_parent=False)
