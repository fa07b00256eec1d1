"""The Lua scripts of ``RowStore.begin``, ``before_request`` and ``finish`` (tasks.rowstore): one round trip for each
step of a row run (tasks.runner), each moving the row together with the other work of that step.

Scripts that save a row call ``transition``: ``tasks.rowstore``'s ``_TRANSITION`` (the script ``RowStore.save``
runs) wrapped as a Lua function by ``texts``, so every save enforces the one TRANSITIONS table the same way.
"""

from __future__ import annotations

from typing import NamedTuple

from tasks.job import Job
from tasks.rows import Row

_BEGIN = """
-- KEYS: rows, state, gen, deliveries, job, lease ; ARGV: row id, generation, lease token, lease ms, final states (csv)
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'missing'} end
if (redis.call('HGET', KEYS[3], ARGV[1]) or '0') ~= ARGV[2] then return {'stale', raw} end
local state = redis.call('HGET', KEYS[2], ARGV[1]) or ''
for s in string.gmatch(ARGV[5], '[^,]+') do if s == state then return {'final', raw} end end
if not redis.call('SET', KEYS[6], ARGV[3], 'NX', 'PX', ARGV[4]) then
  return {'leased', raw, redis.call('PTTL', KEYS[6])}
end
local deliveries = redis.call('HINCRBY', KEYS[4], ARGV[1] .. ':' .. ARGV[2], 1)
return {'ok', raw, deliveries, redis.call('HGETALL', KEYS[5])}
"""

_BEFORE_REQUEST = """
-- KEYS: lease, counts, timeline, then (a row to save) state, counts, rows, dead
-- ARGV: lease token, lease ms, timeline field, timeline ttl s, then the six of ``_TRANSITION``
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lease' end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
if #KEYS > 3 then
  local moved = transition({KEYS[4], KEYS[5], KEYS[6], KEYS[7]},
                           {ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]})
  if moved ~= 'OK' then return {moved} end
end
redis.call('HINCRBY', KEYS[2], 'n_requests', 1)
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
return 'OK'
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


class Begun(NamedTuple):
    """What ``RowStore.begin`` found: ``status`` is ``missing`` (no such row), ``stale`` (the message's generation is
    not the row's), ``final`` (nothing to do), ``leased`` (another copy holds the row for ``lease_left`` seconds) or
    ``ok`` (the lease is ours, the delivery counted, ``job`` read)."""

    status: str
    row: Row | None = None
    deliveries: int = 0
    job: Job | None = None
    lease_left: float = 0.0


def texts(transition: str) -> tuple[str, str, str]:
    """The scripts of ``begin``, ``before_request`` and ``finish``, given the text of the transition script."""
    as_function = "local function transition(KEYS, ARGV)\n" + transition + "\nend\n"
    return _BEGIN, as_function + _BEFORE_REQUEST, as_function + _FINISH
