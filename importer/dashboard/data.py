"""The dashboard's one window on job state: everything it shows or does goes through ``JobData``.

It uses only ``RowStore.jobs/job/counts/rows/dead_row_ids``, ``importer.report.results.dead_reasons`` and
``write_results``, ``tasks.requeue.requeue_rows`` and ``tasks.timeline.read``; rows are ``tasks.rows.Row``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from importer.report.results import dead_reasons, default_path, write_results
from importer.report.troubleshooting import Advice, advice
from tasks import timeline
from tasks.defaults import DEFAULT_RATE_LIMIT, DEFAULT_RATE_WINDOW_S
from tasks.job import Blocked
from tasks.rows import ACTIVE, FINAL
from tasks.rows import STATES as ROW_STATES
from tasks.rowstore import RowStore

#: Rows listed under one dead-letter group on the page (the rest are counted, and in the results file).
MAX_ROWS_PER_GROUP = 50
STATES = tuple(s.value for s in ROW_STATES)


@dataclass(frozen=True)
class JobSummary:
    id: str
    label: str
    host: str
    api_url: str
    created_at: float
    total: int
    counts: dict[str, int]
    tallies: dict[str, int]
    final: bool
    blocked: Blocked | None
    effective_limit_per_s: float | None
    #: What the job's senders said once (another client on the same key), by kind (tasks.timeline).
    notices: dict[str, str] = field(default_factory=dict)
    #: Courses of the job that TagMango holds more than once (importer.matching.duplicates).
    duplicates: list[dict] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in FINAL)

    @property
    def active(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in ACTIVE)

    @property
    def credential(self) -> tuple[str, str]:
        return (self.api_url, self.host)


@dataclass(frozen=True)
class DeadRow:
    sheet: str
    row: int
    title: str
    message: str
    http_status: int | None


@dataclass
class DeadGroup:
    code: str
    count: int
    advice: Advice
    rows: list[DeadRow] = field(default_factory=list)


class JobData:
    def __init__(self, store: RowStore, *, rate_limit: int = DEFAULT_RATE_LIMIT,
                 rate_window: float = DEFAULT_RATE_WINDOW_S) -> None:
        self.store = store
        self.default_limit_per_s = rate_limit / rate_window

    # -- jobs ------------------------------------------------------------------------------------
    def jobs(self, limit: int = 50) -> list[JobSummary]:
        return [s for s in (self.job(j) for j in self.store.jobs(limit)) if s is not None]

    def job(self, job_id: str) -> JobSummary | None:
        meta = self.store.job(job_id)
        if meta is None:
            return None
        raw = self.store.counts(job_id)
        counts = {s: int(raw.get(s, 0)) for s in STATES}
        tallies = {k[2:]: int(v) for k, v in raw.items() if k.startswith("n_")}
        limit = timeline.limit(self.store.r, job_id)
        return JobSummary(id=job_id, label=meta.label, host=meta.host, api_url=meta.api_url,
                          created_at=float(meta.created_at), total=int(meta.total), counts=counts, tallies=tallies,
                          final=not any(counts[s.value] for s in ACTIVE), blocked=meta.blocked,
                          effective_limit_per_s=limit,
                          notices=timeline.notices(self.store.r, job_id), duplicates=meta.duplicates)

    def limit_per_s(self, job: JobSummary) -> float:
        return job.effective_limit_per_s or self.default_limit_per_s

    def eta_s(self, job: JobSummary) -> float:
        """Seconds until the rows still to send are sent at the rate limit (one request per row)."""
        return job.active / self.limit_per_s(job)

    # -- per kind --------------------------------------------------------------------------------
    def kinds(self, job_id: str) -> dict[str, dict[str, int]]:
        """``{kind: {state: rows}}`` from the store's ``kind:<kind>:<state>`` counters."""
        out: dict[str, dict[str, int]] = {}
        for name, value in self.store.counts(job_id).items():
            parts = name.split(":")
            if len(parts) == 3 and parts[0] == "kind":
                out.setdefault(parts[1], dict.fromkeys(STATES, 0))[parts[2]] = int(value)
        return {kind: states for kind, states in out.items() if any(states.values())}

    # -- dead letters ----------------------------------------------------------------------------
    def dead_groups(self, job_id: str) -> list[DeadGroup]:
        groups = {code: DeadGroup(code, n, advice(code)) for code, n in dead_reasons(self.store, job_id).most_common()}
        for row in self.store.rows(job_id, self.store.dead_row_ids(job_id)):
            group = groups.get(row.error.label if row.error else "ERROR")
            if group is not None and len(group.rows) < MAX_ROWS_PER_GROUP:
                group.rows.append(DeadRow(row.sheet, row.row, row.title, row.error.message if row.error else "",
                                          row.error.http_status if row.error else None))
        for group in groups.values():
            group.rows.sort(key=lambda r: (r.sheet, r.row))
        return list(groups.values())

    def requeue(self, job_id: str, code: str) -> dict:
        """Requeue the job's dead rows of one group (an error code, or an HTTP status without one)."""
        from tasks.requeue import requeue_rows

        if code.isdigit():
            return requeue_rows(self.store, job_id, http_status=int(code))
        return requeue_rows(self.store, job_id, error_code=code)

    # -- snapshot and undo -----------------------------------------------------------------------
    def snapshot(self, job_id: str) -> tuple[int, int]:
        """Rows that kept the old values they overwrite or delete (``Row.before``), and the snapshot's size in
        characters of JSON."""
        import json

        kept = [r.before for r in self.store.rows(job_id) if r.before]
        return len(kept), sum(len(json.dumps(b, ensure_ascii=False, default=str)) for b in kept)

    def undo_links(self, job_id: str) -> tuple[str | None, str | None]:
        """(the job this one undoes, the job that undid this one)."""
        meta = self.store.job(job_id)
        return (meta.get("undo_of"), meta.get("undone_by")) if meta else (None, None)

    # -- requests over time ----------------------------------------------------------------------
    def timeline(self, job_id: str) -> dict[str, dict[int, int]]:
        return timeline.read(self.store.r, job_id)

    def credential_timeline(self, job: JobSummary, scan: int = 200) -> tuple[dict[str, dict[int, int]], int]:
        """The summed timeline of every recent job with this job's credential (host + API URL), and how many
        jobs contributed."""
        total: dict[str, dict[int, int]] = {}
        jobs = 0
        for other_id in self.store.jobs(scan):
            other = self.store.job(other_id) if other_id != job.id else None
            if other_id != job.id and (other is None or (other.api_url, other.host) != job.credential):
                continue
            events = self.timeline(other_id)
            if any(events.values()):
                jobs += 1
            for event, seconds in events.items():
                bucket = total.setdefault(event, {})
                for second, n in seconds.items():
                    bucket[second] = bucket.get(second, 0) + n
        return total, jobs

    # -- results ---------------------------------------------------------------------------------
    def results_name(self, job_id: str) -> str:
        return default_path(self.store.job(job_id), Path(".")).name

    def write_results(self, job_id: str, folder: Path) -> Path:
        return write_results(self.store, job_id, folder / self.results_name(job_id))
