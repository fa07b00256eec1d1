"""The idempotency ledger: which TagMango object each row key produced, per API URL and whitelabel host.

``tm:ledger:{target}`` maps a row key (a course's external id or title key, ``chapter:<id>``) to
``{"ids": {...}, "content": sha256 of the body sent, "job": ..., "row": ...}``;
``tm:ledger:{target}:claimed`` is the set of course, module and chapter ids already owned by some row, so that
adopting an object found by title or position can never hand it to two rows. Entries do not expire: the ledger is
what makes re-running a file create nothing twice. ``tm:ledger:{target}:absent`` (an hour) is the set of endpoints
this TagMango answered as routes it does not have (Delete Module, which it does not document).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import redis

#: Ids in a row's result that the row owns (so adoption never hands them to another row).
OWNED_IDS = ("course_id", "module_id", "chapter_id")


def content_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@functools.lru_cache(maxsize=1024)
def target_id(api_url: str, host: str) -> str:
    """A TagMango (API URL and whitelabel host) as a short key; asked for on every row run, hence cached."""
    return hashlib.sha256(f"{api_url.rstrip('/')}|{host.lower()}".encode()).hexdigest()[:16]


class LedgerWrite(NamedTuple):
    """One ledger entry, to be written together with the row's success (``RowStore.finish``): the hash, the field,
    the entry as JSON, the set of claimed object ids and the ids the row owns."""

    key: str
    field: str
    entry: str
    claimed_key: str
    owned: tuple[str, ...]


class Ledger:
    def __init__(self, client: redis.Redis, api_url: str, host: str) -> None:
        self.r = client
        self.key = f"tm:ledger:{target_id(api_url, host)}"
        self._read: dict[str, str | None] = {}  # entries read ahead (``read_ahead``)

    def get(self, row_key: str) -> dict | None:
        raw = self._read.pop(row_key, None) if row_key in self._read else self.r.hget(self.key, row_key)
        return json.loads(raw) if raw else None

    def seed(self, row_key: str, raw: str | None) -> None:
        """The entry of ``row_key`` as just read elsewhere (with a row's admission, tasks.runner): its next ``get``
        answers from it."""
        self._read[row_key] = raw

    def forget(self, row_key: str) -> None:
        """Drop what ``seed`` or ``read_ahead`` read of ``row_key`` and nobody used: its next ``get`` reads Redis."""
        self._read.pop(row_key, None)

    def read_ahead(self, row_keys: Iterable[str], chunk: int = 5000) -> None:
        """Read the entries of ``row_keys`` now, ``chunk`` per round trip: each key's next ``get`` answers from
        them (matching 100,000 rows made 100,000 round trips, most of an enqueue's time)."""
        keys = list(dict.fromkeys(row_keys))
        for start in range(0, len(keys), chunk):
            part = keys[start:start + chunk]
            self._read.update(zip(part, self.r.hmget(self.key, part), strict=True))

    def write(self, row_key: str, ids: dict, body: dict, job_id: str, row_id: str) -> LedgerWrite:
        """The entry ``record`` writes, not written yet."""
        entry = {"ids": ids, "content": content_hash(body), "job": job_id, "row": row_id}
        owned = tuple(str(ids[k]) for k in OWNED_IDS if ids.get(k))
        return LedgerWrite(self.key, row_key, json.dumps(entry), f"{self.key}:claimed", owned)

    def record(self, row_key: str, ids: dict, body: dict, job_id: str, row_id: str) -> None:
        write = self.write(row_key, ids, body, job_id, row_id)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.key, row_key, write.entry)
        if write.owned:
            pipe.sadd(write.claimed_key, *write.owned)
        pipe.execute()

    def claim(self, object_id: str) -> bool:
        """Atomically claim an object id for one row; False when another row owns it already."""
        return bool(self.r.sadd(f"{self.key}:claimed", object_id))

    def is_claimed(self, course_id: str) -> bool:
        return bool(self.r.sismember(f"{self.key}:claimed", course_id))

    #: How long an endpoint this TagMango answered as absent is not asked again (it may be added some day).
    ABSENT_S = 3600

    def lacks(self, endpoint: str) -> bool:
        """This TagMango answered ``endpoint`` (an operation name) as a route it does not have, within the hour."""
        return bool(self.r.sismember(f"{self.key}:absent", endpoint))

    def note_lacking(self, endpoint: str) -> None:
        """Remember for ``ABSENT_S`` that this TagMango has no ``endpoint``: its other rows skip the request."""
        pipe = self.r.pipeline(transaction=True)
        pipe.sadd(f"{self.key}:absent", endpoint)
        pipe.expire(f"{self.key}:absent", self.ABSENT_S)
        pipe.execute()


class PendingLedger(Ledger):
    """A row run's ledger: ``record`` keeps the entry in ``pending`` and the runner writes it in the same Lua script
    as the row's success (``RowStore.finish``), one round trip and atomic with it; reads and claims go to Redis."""

    def __init__(self, client: redis.Redis, api_url: str, host: str) -> None:
        super().__init__(client, api_url, host)
        self.pending: list[LedgerWrite] = []

    def record(self, row_key: str, ids: dict, body: dict, job_id: str, row_id: str) -> None:
        self.pending.append(self.write(row_key, ids, body, job_id, row_id))

    def flush(self) -> None:
        """Write what is pending now (a run that ends without ``finish``)."""
        pending, self.pending = self.pending, []
        for write in pending:
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(write.key, write.field, write.entry)
            if write.owned:
                pipe.sadd(write.claimed_key, *write.owned)
            pipe.execute()
