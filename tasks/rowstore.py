"""Jobs and their rows in Redis: the importer's own record of every row (Flower is only a view).

A row's state and the job's counters move together in one Lua script, which also refuses a change the
``TRANSITIONS`` table (tasks.rows) does not allow, so the counters always add up to the rows. Every task message
carries the row's generation: a message whose generation is not current (a redelivered copy, a superseded retry)
is dropped by the runner. Keys (``{j}`` = job id)::

    tm:jobs                  zset   job id -> created time
    tm:job-by-fingerprint    hash   fingerprint -> job id (the same files again resume their job)
    tm:job:{j}               hash   the job record (tasks.job.Job), one JSON value per field
    tm:job:{j}:rows          hash   row id -> row record (tasks.rows.Row), compact JSON (tasks.rowcodec)
    tm:job:{j}:templates     string what the job's row records share, stored once (tasks.rowcodec)
    tm:job:{j}:state         hash   row id -> state; changed only together with the counters
    tm:job:{j}:counts        hash   state -> rows; kind:<kind>:<state> -> rows; n_<tally> -> job tallies
    tm:job:{j}:order         list   row ids in input order (for the results file)
    tm:job:{j}:dead          zset   row id -> time it was dead-lettered (the dead-letter index)
    tm:job:{j}:waiting:{r}   set    rows waiting for row r (their parent)
    tm:job:{j}:gen           hash   row id -> generation of the one live task message for the row (absent: 0)
    tm:job:{j}:deliveries    hash   "row id:generation" -> deliveries of that message
    tm:job:{j}:timeline      hash   "<event>:<epoch second>" -> requests sent, 429s, retries (tasks.timeline)
    tm:job:{j}:notices       hash   kind -> what was said once about the job (tasks.timeline)
    tm:lease:{j}:{r}         string the lock token of the task working on row r (expires)

A row run (tasks.runner) touches these keys in one round trip per step: ``begin``, ``before_request``, ``finish``
and ``later`` (from ``RowRunSteps``, tasks.rowscripts), whose Lua scripts call ``_TRANSITION`` as a function.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from redis.lock import Lock

from tasks import rowcodec
from tasks.job import Blocked, Job
from tasks.jobwriter import CHUNK, JobWriter
from tasks.rowcodec import Templates
from tasks.rows import ACTIVE, Row, RowState
from tasks.rowscripts import IllegalTransition, RowRunSteps  # noqa: F401 - re-exported: the store raises it

_TRANSITION = """
-- KEYS: state, counts, rows, dead ; ARGV: row id, new state, record json, allowed old states (csv), now, kind
local old = redis.call('HGET', KEYS[1], ARGV[1])
local ok = false
for s in string.gmatch(ARGV[4], '[^,]+') do if s == old then ok = true end end
if not ok then return old or '' end
if old ~= ARGV[2] then
  redis.call('HINCRBY', KEYS[2], old, -1)
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('HINCRBY', KEYS[2], 'kind:' .. ARGV[6] .. ':' .. old, -1)
  redis.call('HINCRBY', KEYS[2], 'kind:' .. ARGV[6] .. ':' .. ARGV[2], 1)
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
if ARGV[2] == 'dead' then redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
else redis.call('ZREM', KEYS[4], ARGV[1]) end
return 'OK'
"""



def now() -> float:
    return time.time()


def iso(ts: float | None) -> str | None:
    if not ts:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def connect(url: str) -> redis.Redis:
    """A client (a connection pool) on the Redis at ``url``, as the row store and the modules beside it use it."""
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


def new_job_id() -> str:
    return time.strftime("imp-%Y%m%d-%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:6]


class RowStore(RowRunSteps, JobWriter):
    """All reads and writes of job and row records. Thread-safe (redis-py pools connections). The steps of a row run,
    one round trip each (``begin``, ``before_request``, ``finish``, ``later``), come from ``RowRunSteps``; writing a
    new job (``create_job``) from ``JobWriter``."""

    #: ``tm:job:{j}:{part}``; the dispatcher's Lua builds the rows and gen keys from it (``key_around``).
    PREFIX = "tm:job:"

    def __init__(self, client: redis.Redis, ttl_days: float = 30.0, url: str = "") -> None:
        self.r = client
        self.url = url
        self.ttl = int(ttl_days * 86400)
        self._transition = client.register_script(_TRANSITION)
        begin, before_request, finish, later, self._start_step_text = RowRunSteps.texts(_TRANSITION)
        self._begin = client.register_script(begin)
        self._before_request = client.register_script(before_request)
        self._finish = client.register_script(finish)
        self._finish_text = finish
        self._finish_riding: dict[str, Any] = {}  # rider name -> ``finish`` that runs it first (``finish_script``)
        self._later = client.register_script(later)
        self._templates: dict[str, Templates] = {}  # job id -> its templates (never change once the job exists)
        self._jobs: dict[str, tuple[str, Job]] = {}  # job id -> the job as ``begin`` last read it, with its digest

    @classmethod
    def from_url(cls, url: str, ttl_days: float = 30.0) -> RowStore:
        return cls(connect(url), ttl_days, url)

    # -- keys ------------------------------------------------------------------------------
    @classmethod
    def k(cls, job_id: str, part: str = "") -> str:
        return cls.PREFIX + job_id + (f":{part}" if part else "")

    @classmethod
    def key_around(cls, part: str) -> tuple[str, str]:
        """(prefix, suffix) such that ``prefix + job id + suffix`` is the job's ``part`` key: for a Lua script that
        finds the job in a value (the dispatcher reads a parked row's attempts and generation)."""
        return cls.PREFIX, f":{part}"

    def job_keys(self, job_id: str) -> list[str]:
        """Every key of the job (the waiting sets found by a scan), for their lifetime."""
        keys = [self.k(job_id, p) for p in ("", "rows", "state", "counts", "order", "dead", "gen", "deliveries",
                                            "timeline", "notices", "templates")]
        keys += list(self.r.scan_iter(match=self.k(job_id, "waiting:*"), count=1000))
        return keys

    # -- jobs (writing one: tasks.jobwriter) ------------------------------------------------
    # -- row records (tasks.rowcodec) -------------------------------------------------------
    def templates(self, job_id: str, fresh: bool = False) -> Templates:
        """The job's templates, read once per process (a job's templates only grow while it is being created)."""
        found = None if fresh else self._templates.get(job_id)
        if found is None:
            found = Templates.from_json(self.r.get(self.k(job_id, "templates")))
            if len(self._templates) > 1000:
                self._templates.clear()
            self._templates[job_id] = found
        return found

    def encode_row(self, job_id: str, row: Row) -> str:
        return rowcodec.encode(row, self.templates(job_id))

    def decode_row(self, job_id: str, row_id: str, raw: str) -> Row:
        try:
            return rowcodec.decode(row_id, raw, self.templates(job_id))
        except LookupError:  # a template added after this process read the list
            return rowcodec.decode(row_id, raw, self.templates(job_id, fresh=True))

    def refresh_ttl(self, job_id: str) -> None:
        """Every key of the job lives ``ttl`` from now (30 days by default: the dead letters' lifetime)."""
        pipe = self.r.pipeline(transaction=False)
        for key in self.job_keys(job_id):
            pipe.expire(key, self.ttl)
        pipe.execute()

    def job(self, job_id: str) -> Job | None:
        """The job record, or None for a job that never was or has expired."""
        raw = self.r.hgetall(self.k(job_id))
        return Job.from_fields({"id": job_id, **{k: json.loads(v) for k, v in raw.items()}}) if raw else None

    def set_job(self, job_id: str, **fields: object) -> None:
        """Change or add fields of the job record (a ``Blocked`` is stored as its dict)."""
        self.r.hset(self.k(job_id), mapping={k: json.dumps(v.as_dict() if isinstance(v, Blocked) else v)
                                             for k, v in fields.items()})

    def jobs(self, limit: int = 20) -> list[str]:
        """Job ids, newest first."""
        return list(self.r.zrevrange("tm:jobs", 0, limit - 1))

    def latest_job(self) -> str | None:
        ids = self.jobs(1)
        return ids[0] if ids else None

    def job_for_fingerprint(self, fingerprint: str) -> str | None:
        """The job that imported the same files to the same target in the same mode, if it still exists."""
        job_id = self.r.hget("tm:job-by-fingerprint", fingerprint)
        return job_id if job_id and self.r.exists(self.k(job_id)) else None

    def counts(self, job_id: str) -> dict[str, int]:
        """Rows per state, per ``kind:<kind>:<state>``, and the job's ``n_<tally>`` tallies."""
        raw = self.r.hgetall(self.k(job_id, "counts"))
        return {k: int(v) for k, v in raw.items()}

    def tally(self, job_id: str, name: str, amount: int = 1) -> None:
        """Job-level tallies that are not row states (requests sent, retries, adopted objects)."""
        self.r.hincrby(self.k(job_id, "counts"), f"n_{name}", amount)

    def is_final(self, job_id: str) -> bool:
        """No row is queued, running or retrying."""
        counts = self.counts(job_id)
        return not any(counts.get(s.value, 0) for s in ACTIVE)

    # -- rows ------------------------------------------------------------------------------
    def row(self, job_id: str, row_id: str) -> Row | None:
        raw = self.r.hget(self.k(job_id, "rows"), row_id)
        return self.decode_row(job_id, row_id, raw) if raw else None

    def rows(self, job_id: str, row_ids: Iterable[str] | None = None) -> Iterator[Row]:
        """Row records in input order (or of the given ids), fetched 1,000 at a time."""
        for ids, raws in self._records(job_id, row_ids, 1000):
            yield from (self.decode_row(job_id, i, raw) for i, raw in zip(ids, raws, strict=True) if raw)

    def glances(self, job_id: str, size: int = CHUNK) -> Iterator[list[rowcodec.Glance]]:
        """What publishing needs of every row (``rowcodec.glance``, with its generation), in input order, ``size``
        rows per page."""
        templates = self.templates(job_id, fresh=True)  # (complete: the job exists)
        for ids, raws, gens in self._records(job_id, None, size, generations=True):
            yield [rowcodec.glance(i, raw, templates)._replace(gen=int(gen or 0))
                   for i, raw, gen in zip(ids, raws, gens, strict=True) if raw]

    def _records(self, job_id: str, row_ids: Iterable[str] | None, size: int, generations: bool = False) \
            -> Iterator[tuple]:
        """(row ids, their records[, their generations]), ``size`` per round trip: of ``row_ids``, else of every row
        in input order (the order list read a page at a time: a million-row job is never held whole)."""
        if row_ids is not None:
            ids = list(row_ids)
            pages: Iterable[list[str]] = (ids[start:start + size] for start in range(0, len(ids), size))
        else:
            order = self.k(job_id, "order")
            pages = itertools.takewhile(bool, (self.r.lrange(order, start, start + size - 1)
                                               for start in itertools.count(0, size)))
        for page in pages:
            pipe = self.r.pipeline(transaction=False)
            pipe.hmget(self.k(job_id, "rows"), page)
            if generations:
                pipe.hmget(self.k(job_id, "gen"), page)
            yield page, *pipe.execute()

    def states(self, job_id: str) -> dict[str, str]:
        """Row id -> state, for every row (one read)."""
        return self.r.hgetall(self.k(job_id, "state"))

    def save(self, job_id: str, row: Row, expect: Iterable[RowState] | None = None) -> bool:
        """Store the row and move its state (and the counters) atomically.

        The change must be one the TRANSITIONS table allows (else ``IllegalTransition``). ``expect`` narrows
        the states the row may be in now, for compare-and-set: when the row has moved on (a concurrent
        requeue, a release that already happened), nothing is written and the answer is False.
        """
        keys, args, allowed = self._transition_args(job_id, row, expect)
        return self._moved(job_id, row, self._transition(keys=keys, args=args), allowed)

    # -- task messages ---------------------------------------------------------------------
    def generation(self, job_id: str, row_id: str) -> int:
        """The generation of the row's one live task message; a message of any other is stale."""
        return int(self.r.hget(self.k(job_id, "gen"), row_id) or 0)

    def generations(self, job_id: str) -> dict[str, int]:
        return {row_id: int(gen) for row_id, gen in self.r.hgetall(self.k(job_id, "gen")).items()}

    def next_generation(self, job_id: str, row_id: str) -> int:
        """A new generation for a new message of the row (every earlier message becomes stale)."""
        return int(self.r.hincrby(self.k(job_id, "gen"), row_id, 1))

    def renew(self, job_id: str, rows: list[Row]) -> list[Row]:
        """``next_generation`` and ``save`` for each row, in two round trips for all of them rather than two per
        row (``resume`` of a million-row job); the rows saved. Only a row still active is saved (compare-and-set):
        one that finished meanwhile is left as it is and not returned; its new generation only makes any message of
        it stale."""
        if not rows:
            return []
        pipe = self.r.pipeline(transaction=False)
        for row in rows:
            pipe.hincrby(self.k(job_id, "gen"), row.row_id, 1)
        for row, gen in zip(rows, pipe.execute(), strict=True):
            row.gen = int(gen)
        pipe = self.r.pipeline(transaction=False)
        for row in rows:
            keys, args, _ = self._transition_args(job_id, row, ACTIVE)
            self._transition(keys=keys, args=args, client=pipe)
        return [row for row, result in zip(rows, pipe.execute(), strict=True) if result == "OK"]

    def count_delivery(self, job_id: str, row_id: str, gen: int) -> int:
        """Count one more delivery of the row's message ``gen``; returns the deliveries so far."""
        return int(self.r.hincrby(self.k(job_id, "deliveries"), f"{row_id}:{gen}", 1))

    def lease(self, job_id: str, row_id: str, seconds: float) -> Lock:
        """The row's lease: a redis-py lock (token, released by compare-and-delete), taken without blocking."""
        return self.r.lock(f"tm:lease:{job_id}:{row_id}", timeout=seconds, blocking=False, thread_local=False)

    def lease_left(self, job_id: str, row_id: str) -> float:
        """Seconds until the row's lease expires (0 when nobody holds it)."""
        ms = self.r.pttl(f"tm:lease:{job_id}:{row_id}")
        return max(ms, 0) / 1000

    # -- dependencies ----------------------------------------------------------------------
    def waiting_on(self, job_id: str, parent_row_id: str) -> list[str]:
        """Ids of the rows that wait for ``parent_row_id`` (planned so; a released row stays listed)."""
        return sorted(self.r.smembers(self.k(job_id, f"waiting:{parent_row_id}")))

    def have_waiting(self, job_id: str, parent_row_ids: list[str]) -> list[bool]:
        """For each row, whether rows wait for it (one round trip)."""
        pipe = self.r.pipeline(transaction=False)
        for row_id in parent_row_ids:
            pipe.exists(self.k(job_id, f"waiting:{row_id}"))
        return [bool(n) for n in pipe.execute()] if parent_row_ids else []

    def add_waiting(self, job_id: str, parent_row_id: str, row_id: str) -> None:
        self.r.sadd(self.k(job_id, f"waiting:{parent_row_id}"), row_id)
        self.r.expire(self.k(job_id, f"waiting:{parent_row_id}"), self.ttl)

    # -- dead letters ----------------------------------------------------------------------
    def dead_row_ids(self, job_id: str) -> list[str]:
        """Dead rows, oldest dead-lettering first."""
        return list(self.r.zrange(self.k(job_id, "dead"), 0, -1))
