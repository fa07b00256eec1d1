"""Writing a new job to Redis (``RowStore.create_job``, a mixin of ``tasks.rowstore.RowStore``): its rows a chunk
per round trip as they come, the job record last, in one transaction; the keys are ``RowStore``'s."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tasks import rowcodec
from tasks.job import Job
from tasks.rowcodec import Templates
from tasks.rows import STATES, Row, RowState

if TYPE_CHECKING:
    import redis

#: Rows written per round trip when a job is created.
CHUNK = 5000


class JobWriter:
    """Uses the store's client, lifetime, template cache, ``k`` (a job's keys) and ``job_keys``."""

    r: redis.Redis
    ttl: int
    _templates: dict[str, Templates]

    def create_job(self, job: Job, rows: Iterable[Row], chunk: int = CHUNK) -> None:
        """Write every row record, ``chunk`` rows per round trip, then the job record in one transaction (its
        ``total``: the rows written).

        Until that last transaction the job does not exist (no record, not listed, not found by its fingerprint):
        rows that fail to come (``rows`` raised: a read of TagMango refused while matching, Ctrl-C) are deleted;
        an enqueue cut off harder (the process killed) leaves only row keys nobody reads, which expire.
        """
        job_id = job.id
        templates = Templates()
        counts: dict[str, int] = dict.fromkeys((s.value for s in STATES), 0)
        batch: list[Row] = []
        job.total = 0  # the rows written (``rows`` may be a generator, which may fail: nothing is left behind)
        try:
            for row in rows:
                batch.append(row)
                if len(batch) >= chunk:
                    self._write_rows(job_id, batch, templates, counts)
                    job.total += len(batch)
                    batch = []
            self._write_rows(job_id, batch, templates, counts)
        except BaseException:
            self.r.delete(*self.job_keys(job_id))
            raise
        job.total += len(batch)
        job.created_at = time.time()  # (rows never touched since count from here: tasks.recovery)
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self.k(job_id, "templates"), templates.to_json(), ex=self.ttl)
        pipe.hset(self.k(job_id, "counts"), mapping=counts)
        pipe.hset(self.k(job_id), mapping={k: json.dumps(v) for k, v in job.to_fields().items()})
        for part in ("", "counts"):
            pipe.expire(self.k(job_id, part), self.ttl)
        pipe.zadd("tm:jobs", {job_id: job.created_at})
        if job.fingerprint:
            pipe.hset("tm:job-by-fingerprint", job.fingerprint, job_id)
        pipe.execute()
        self._templates[job_id] = templates

    def _write_rows(self, job_id: str, rows: list[Row], templates: Templates, counts: dict[str, int]) -> None:
        """One round trip: the rows' records, states, generations (only those above 0), order, dead index and
        waiting sets, each key given the job's lifetime."""
        if not rows:
            return
        pipe = self.r.pipeline(transaction=False)
        if any([templates.add(r) for r in rows]):  # (a list: every row's template added)
            pipe.set(self.k(job_id, "templates"), templates.to_json(), ex=self.ttl)
        encode = rowcodec.encode
        pipe.hset(self.k(job_id, "rows"), mapping={r.row_id: encode(r, templates) for r in rows})
        pipe.hset(self.k(job_id, "state"), mapping={r.row_id: r.state.value for r in rows})
        gens = {r.row_id: r.gen for r in rows if r.gen}
        if gens:
            pipe.hset(self.k(job_id, "gen"), mapping=gens)
        pipe.rpush(self.k(job_id, "order"), *[r.row_id for r in rows])
        dead = {r.row_id: time.time() for r in rows if r.state is RowState.DEAD}
        if dead:
            pipe.zadd(self.k(job_id, "dead"), dead)
        waiting: dict[str, list[str]] = {}
        for r in rows:
            state = r.state.value
            counts[state] += 1
            kind = f"kind:{r.kind}:{state}"
            counts[kind] = counts.get(kind, 0) + 1
            if r.waiting_for_parent:
                waiting.setdefault(r.parent, []).append(r.row_id)
        for parent, children in waiting.items():
            pipe.sadd(self.k(job_id, f"waiting:{parent}"), *children)
            pipe.expire(self.k(job_id, f"waiting:{parent}"), self.ttl)
        for part in ("rows", "state", "gen", "order", "dead"):
            pipe.expire(self.k(job_id, part), self.ttl)
        pipe.execute()
