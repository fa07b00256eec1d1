"""The Lua scripts of ``RowStore.begin``, ``before_request``, ``finish`` and ``later`` (tasks.rowstore): one round trip
for each step of a row run (tasks.runner), each moving the row together with the other work of that step.

Scripts that save a row call ``transition``: ``tasks.rowstore``'s ``_TRANSITION`` (the script ``RowStore.save``
runs) wrapped as a Lua function by ``RowRunSteps.texts``, so every save enforces the one TRANSITIONS table the same
way. ``RowRunSteps`` is ``RowStore``'s base class: these steps are row store methods, kept here for the size of
tasks/rowstore.py. ``IllegalTransition`` lives here for both (``tasks.rowstore`` exports it as before).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from tasks import lua, timeline
from tasks.job import Job
from tasks.ledger import LedgerWrite
from tasks.rows import FINAL, Row, RowState, sources_of

_BEGIN = """
-- KEYS: rows, state, gen, deliveries, job, lease
-- ARGV: row id, generation, lease token, lease ms, final states (csv), digest of the job the caller holds ('' none)
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'missing'} end
if (redis.call('HGET', KEYS[3], ARGV[1]) or '0') ~= ARGV[2] then return {'stale', raw} end
local state = redis.call('HGET', KEYS[2], ARGV[1]) or ''
for s in string.gmatch(ARGV[5], '[^,]+') do if s == state then return {'final', raw} end end
if not redis.call('SET', KEYS[6], ARGV[3], 'NX', 'PX', ARGV[4]) then
  return {'leased', raw, redis.call('PTTL', KEYS[6])}
end
local deliveries = redis.call('HINCRBY', KEYS[4], ARGV[1] .. ':' .. ARGV[2], 1)
-- The job changes seldom: a caller holding it as it is gets its digest back, not every field again.
local job = redis.call('HGETALL', KEYS[5])
local digest = redis.sha1hex(table.concat(job, '\0'))
if digest == ARGV[6] then return {'ok', raw, deliveries, {}, digest} end
return {'ok', raw, deliveries, job, digest}
"""

_BEFORE_REQUEST = """
-- KEYS: lease, counts, timeline, then (a row to save) state, counts, rows, dead
-- ARGV: lease token, lease ms, timeline field ('' counts nothing: counted already), timeline ttl s, then the six of
-- ``_TRANSITION``
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lease' end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
if #KEYS > 3 then
  local moved = transition({KEYS[4], KEYS[5], KEYS[6], KEYS[7]},
                           {ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]})
  if moved ~= 'OK' then return {moved} end
end
if ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[2], 'n_requests', 1)
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
end
return 'OK'
"""

#: ``_BEFORE_REQUEST`` as the limiter's ``then`` rider (``RowRunSteps.start_step``): go on only if it answered 'OK'.
_START_STEP = """
local function step(KEYS, ARGV)
BEFORE_REQUEST
end
local answer = step(KEYS, ARGV)
return answer == 'OK', answer
"""

_FINISH = """
-- KEYS: state, counts, rows, dead, lease, waiting, then per ledger write: ledger hash, its claimed set
-- ARGV: the six of ``_TRANSITION``, lease token ('' for none), ledger writes, then per write: field, entry,
-- number of owned ids, the owned ids
local a = 9
for i = 0, tonumber(ARGV[8]) - 1 do
  local k = 7 + 2 * i
  redis.call('HSET', KEYS[k], ARGV[a], ARGV[a + 1])
  for j = 1, tonumber(ARGV[a + 2]) do redis.call('SADD', KEYS[k + 1], ARGV[a + 2 + j]) end
  a = a + 3 + tonumber(ARGV[a + 2])
end
local moved = transition({KEYS[1], KEYS[2], KEYS[3], KEYS[4]}, {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]})
if ARGV[7] ~= '' and redis.call('GET', KEYS[5]) == ARGV[7] then redis.call('DEL', KEYS[5]) end
return {moved, redis.call('SMEMBERS', KEYS[6])}
"""

_LATER = """
-- KEYS: gen, lease, park, park targets, park wake, counts, timeline, then (a row to save) state, counts, rows, dead
-- ARGV: row id, lease token ('' for none), park member, park score, target, target info, timeline field ('' for no
-- retry to count), timeline ttl s, then the six of ``_TRANSITION``
local gen = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local moved = 'OK'
if #KEYS > 7 then
  moved = transition({KEYS[8], KEYS[9], KEYS[10], KEYS[11]},
                     {ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]})
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
if moved ~= 'OK' then return {gen, moved} end
if ARGV[7] ~= '' then
  redis.call('HINCRBY', KEYS[6], 'n_retries', 1)
  redis.call('HINCRBY', KEYS[7], ARGV[7], 1)
  redis.call('EXPIRE', KEYS[7], tonumber(ARGV[8]))
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
redis.call('RPUSH', KEYS[5], 1)
redis.call('LTRIM', KEYS[5], 0, 0)
return {gen, moved}
"""


class Begun(NamedTuple):
    """What ``RowStore.begin`` found: ``status`` is ``missing`` (no such row), ``stale`` (the message's generation is
    not the row's), ``final`` (nothing to do), ``leased`` (another copy holds the row for ``lease_left`` seconds) or
    ``ok`` (the lease is ours, the delivery counted, ``job`` read)."""

    status: str
    row: Row | None = None
    deliveries: int = 0
    job: Job | None = None
    lease_left: float = 0.0


class LaterWrite(NamedTuple):
    """Where ``later`` parks a row (tasks.park.later_write makes it): the park, the member and its score, the target
    and what the targets hash holds for it, the targets hash and the dispatcher's wake list."""

    key: str
    member: str
    score: int
    target: str
    info: str
    targets_key: str
    wake_key: str


class IllegalTransition(RuntimeError):
    """A save asked for a state change the TRANSITIONS table forbids (a bug, or a row deleted under us)."""


class RowRunSteps:
    """The steps of a row run as ``RowStore`` methods (its base class): one Lua script, one round trip, each."""

    k: Callable[..., str]
    encode_row: Callable[[str, Row], str]
    decode_row: Callable[[str, str, str], Row]
    _begin: Any
    _before_request: Any
    _start_step_text: str
    _finish: Any
    _finish_text: str
    _finish_riding: dict[str, Any]
    _later: Any
    r: Any
    #: Job id -> (digest, the job as ``begin`` last read it): shared by the runs of this process, never changed by
    #: them; ``begin`` reads the job again only when its digest differs.
    _jobs: dict[str, tuple[str, Job]]
    JOBS_HELD = 256

    @staticmethod
    def texts(transition: str) -> tuple[str, str, str, str, str]:
        """The scripts of ``begin``, ``before_request``, ``finish`` and ``later``, given the text of the transition
        script, and the body of ``start_step``'s rider."""
        as_function = "local function transition(KEYS, ARGV)\n" + transition + "\nend\n"
        return (_BEGIN, as_function + _BEFORE_REQUEST, as_function + _FINISH, as_function + _LATER,
                as_function + _START_STEP.replace("BEFORE_REQUEST", _BEFORE_REQUEST))

    def _transition_args(self, job_id: str, row: Row,
                         expect: Iterable[RowState] | None = None) -> tuple[list[str], list, frozenset[RowState]]:
        """``save``'s keys and arguments for ``row`` (its record stamped now) and the states it may come from."""
        allowed = sources_of(row.state)
        wanted = allowed if expect is None else allowed & frozenset(expect)
        row.updated_at = time.time()
        keys = [self.k(job_id, "state"), self.k(job_id, "counts"), self.k(job_id, "rows"), self.k(job_id, "dead")]
        args = [row.row_id, row.state.value, self.encode_row(job_id, row), ",".join(s.value for s in wanted),
                time.time(), row.kind]
        return keys, args, allowed

    def _append_row(self, keys: list, args: list, job_id: str, row: Row | None) -> frozenset[RowState]:
        """Add ``row``'s save (if any) to a script's keys and arguments; the states it may come from."""
        if row is None:
            return frozenset()
        t_keys, t_args, allowed = self._transition_args(job_id, row)
        keys += t_keys
        args += t_args
        return allowed

    @staticmethod
    def _moved(job_id: str, row: Row, result: object, allowed: frozenset[RowState]) -> bool:
        """``save``'s answer (True, False: moved on) from the transition's; ``IllegalTransition`` if forbidden."""
        if result == "OK":
            return True
        old = RowState(result) if result else None
        if old is None or old not in allowed:
            raise IllegalTransition(f"{job_id} {row.row_id}: {old.value if old else 'missing'} -> {row.state.value}")
        return False

    # -- one round trip per step of a row run (tasks.runner) ----------------------------------
    @staticmethod
    def lease_key(job_id: str, row_id: str) -> str:
        return f"tm:lease:{job_id}:{row_id}"

    def begin(self, job_id: str, row_id: str, gen: int, token: str, lease_seconds: float) -> Begun:
        """The start of a row's message, in one round trip: the row; unless the message is stale or the row final,
        its lease taken with ``token`` (as ``lease(...).acquire()`` would), the delivery of message ``gen`` counted
        (``count_delivery``) and the job read (or, when the job is as this process last read it, its digest: the
        ``Job`` read then is handed out again, shared; a worker's runs only read it)."""
        held_digest, held = self._jobs.get(job_id, ("", None))
        answer = self._begin(
            keys=[self.k(job_id, "rows"), self.k(job_id, "state"), self.k(job_id, "gen"), self.k(job_id, "deliveries"),
                  self.k(job_id), self.lease_key(job_id, row_id)],
            args=[row_id, gen, token, max(int(lease_seconds * 1000), 1), ",".join(s.value for s in FINAL), held_digest])
        status = answer[0]
        row = self.decode_row(job_id, row_id, answer[1]) if len(answer) > 1 else None
        if status == "leased":
            return Begun(status, row, lease_left=max(int(answer[2]), 0) / 1000)
        if status != "ok":
            return Begun(status, row)
        raw, digest = answer[3], answer[4]
        if held is not None and digest == held_digest:
            return Begun(status, row, int(answer[2]), held)
        fields = {raw[i]: json.loads(raw[i + 1]) for i in range(0, len(raw), 2)}
        job = Job.from_fields({"id": job_id, **fields}) if fields else None
        if job is not None:
            if len(self._jobs) >= self.JOBS_HELD:
                self._jobs.clear()
            self._jobs[job_id] = (digest, job)
        return Begun(status, row, int(answer[2]), job)

    def before_request(self, job_id: str, row_id: str, token: str, lease_seconds: float, timeline_key: str,
                       timeline_field: str, ttl_s: int, row: Row | None = None) -> bool:
        """Just before one of the row's requests leaves, in one round trip: the lease still ours (renewed for
        ``lease_seconds``, as ``Lock.reacquire``), ``row`` saved if given (as ``save``), the request counted (the
        job's ``n_requests`` and its timeline, tasks.timeline; not when ``timeline_field`` is ''). False when the
        lease is not ours: nothing written."""
        keys, args, allowed = self._before_args(job_id, row_id, token, lease_seconds, timeline_key, timeline_field,
                                                ttl_s, row)
        return self.started(job_id, row, self._before_request(keys=keys, args=args), allowed)

    def start_step(self, job_id: str, row_id: str, token: str, lease_seconds: float, timeline_key: str,
                   timeline_field: str, ttl_s: int, row: Row) -> tuple[lua.Rider, frozenset[RowState]]:
        """``before_request`` with ``row`` (the start of an attempt) as a rider of the limiter's admission
        (``RateLimiter.admit(then=...)``, tasks.lua): run in the admission's round trip once the request can be
        admitted, and the request admitted only if it went through. Its answer (``Admission.stopped`` when it did
        not) goes to ``started`` with the states returned here."""
        keys, args, allowed = self._before_args(job_id, row_id, token, lease_seconds, timeline_key, timeline_field,
                                                ttl_s, row)
        return lua.Rider("row_start", self._start_step_text, tuple(keys), tuple(args)), allowed

    def started(self, job_id: str, row: Row | None, result: object, allowed: frozenset[RowState]) -> bool:
        """``before_request``'s answer: False when the lease is not ours; ``IllegalTransition`` if the save was
        refused."""
        if result == "lease":
            return False
        if isinstance(result, list) and row is not None:
            self._moved(job_id, row, result[0], allowed)
        return True

    def take_back_request(self, job_id: str, timeline_field: str) -> None:
        """A request counted with the start of an attempt (``start_step``) that never left: uncounted (the job's
        ``n_requests`` and its timeline field), in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hincrby(self.k(job_id, "counts"), "n_requests", -1)
        pipe.hincrby(timeline.key(job_id), timeline_field, -1)
        pipe.execute()

    def _before_args(self, job_id: str, row_id: str, token: str, lease_seconds: float, timeline_key: str,
                     timeline_field: str, ttl_s: int, row: Row | None) -> tuple[list, list, frozenset[RowState]]:
        keys = [self.lease_key(job_id, row_id), self.k(job_id, "counts"), timeline_key]
        args: list = [token, max(int(lease_seconds * 1000), 1), timeline_field, ttl_s]
        allowed = self._append_row(keys, args, job_id, row)
        return keys, args, allowed

    def finish(self, job_id: str, row: Row, *, token: str = "", ledger: Sequence[LedgerWrite] = (),
               expect: Iterable[RowState] | None = None, rider: lua.Rider | None = None) -> tuple[bool, list[str]]:
        """The end of a row run, in one round trip: ``rider`` run first if given (the limiter's ``done`` for the
        row's last request, tasks.lua), ``ledger`` entries written, the row saved (as ``save``, same answer), its
        lease released if ``token`` still holds it. Also returns the rows waiting for it (``waiting_on``)."""
        keys, args, allowed = self._transition_args(job_id, row, expect)
        keys += [self.lease_key(job_id, row.row_id), self.k(job_id, f"waiting:{row.row_id}")]
        args += [token, len(ledger)]
        for write in ledger:
            keys += [write.key, write.claimed_key]
            args += [write.field, write.entry, len(write.owned), *write.owned]
        script = self._finish
        if rider is not None:
            script = self.finish_script(rider)
            lua.append(rider, keys, args)
        moved, waiting = script(keys=keys, args=args)
        return self._moved(job_id, row, moved, allowed), sorted(waiting)

    def finish_script(self, rider: lua.Rider) -> Any:
        """``finish`` carrying ``rider``: registered once per rider name."""
        script = self._finish_riding.get(rider.name)
        if script is None:
            script = self._finish_riding[rider.name] = self.r.register_script(
                lua.with_rider(rider.body, self._finish_text))
        return script

    def later(self, job_id: str, row_id: str, parked: LaterWrite, *, row: Row | None = None,
              token: str = "", retry_field: str = "", ttl_s: int = 0) -> int:
        """A row run that hands the row to a later message, in one round trip: a new generation (``next_generation``,
        returned), ``row`` saved if given (as ``save``), a retry counted in the job's tallies and timeline if
        ``retry_field`` (tasks.timeline), the lease released if ``token`` holds it, and the row parked as
        ``park_later`` parks it (``parked``, tasks.park.later_write). A refused save parks and counts nothing."""
        keys = [self.k(job_id, "gen"), self.lease_key(job_id, row_id), parked.key, parked.targets_key,
                parked.wake_key, self.k(job_id, "counts"), self.k(job_id, "timeline")]
        args: list = [row_id, token, parked.member, parked.score, parked.target, parked.info, retry_field, ttl_s]
        allowed = self._append_row(keys, args, job_id, row)
        gen, moved = self._later(keys=keys, args=args)
        if row is not None:
            self._moved(job_id, row, moved, allowed)
        return int(gen)
