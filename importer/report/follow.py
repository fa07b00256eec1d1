"""Following a job: live progress (rich on a terminal, plain lines otherwise) and the final summary."""

from __future__ import annotations

import sys
import time
from collections import deque

import click

from importer.exitcodes import EXIT_OK, EXIT_ROWS_FAILED
from importer.report.results import dead_reasons
from tasks import timeline
from tasks.job import Job
from tasks.recovery import republish_stuck
from tasks.rows import FINAL, STATES
from tasks.rowstore import RowStore
from tasks.settings import Settings

SWEEP_EVERY_S = 30.0


def snapshot(store: RowStore, job_id: str, results_file: str | None = None) -> dict:
    """The machine-readable summary shared by ``run --json`` and ``status --json``."""
    counts = store.counts(job_id)
    job = store.job(job_id) or Job(job_id)
    return {"job": job_id, "total": job.total, "final": store.is_final(job_id),
            "counts": {s.value: counts.get(s.value, 0) for s in STATES}, "results_file": results_file,
            "duplicates": job.duplicates, "notices": timeline.notices(store.r, job_id)}


class Meter:
    """Requests per second over the last 10 s, from the job's request tally."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()

    def rate(self, requests: int) -> float:
        now = time.monotonic()
        self.samples.append((now, requests))
        while self.samples and now - self.samples[0][0] > 10:
            self.samples.popleft()
        t0, r0 = self.samples[0]
        return (requests - r0) / (now - t0) if now > t0 else 0.0


def exit_code(snap: dict) -> int:
    """The command's exit code for a job: 1 when rows are dead or invalid, a course is in TagMango twice, or the
    job is not final; else 0."""
    counts = snap["counts"]
    failed = counts["dead"] or counts["invalid"] or snap.get("duplicates") or not snap["final"]
    return EXIT_ROWS_FAILED if failed else EXIT_OK


def follow(store: RowStore, job_id: str, settings: Settings, *, quiet: bool = False, sweep: bool = True) -> dict:
    """Wait until the job is final, showing progress; give stuck rows a fresh message now and then."""
    allowed = settings.rate_limit / settings.rate_window
    meter, last_sweep = Meter(), time.monotonic()
    total = (store.job(job_id) or Job(job_id)).total
    interactive = sys.stdout.isatty() and not quiet
    progress = None
    if interactive:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), transient=False)
        bar = progress.add_task(job_id, total=total, detail="")
        progress.start()
    last_line = 0.0
    said: set[str] = set()
    try:
        while True:
            for kind, text in timeline.notices(store.r, job_id).items():
                if kind not in said and not quiet:
                    said.add(kind)
                    (progress.console.print if progress is not None else click.echo)(f"note: {text}")
            counts = store.counts(job_id)
            done = sum(counts.get(s.value, 0) for s in FINAL)
            rate = meter.rate(counts.get("n_requests", 0))
            remaining = total - done
            eta = remaining / allowed if allowed else 0
            detail = (f"ok {counts.get('succeeded', 0)}  skipped {counts.get('skipped', 0)}  "
                      f"retrying {counts.get('retrying', 0)}  dead {counts.get('dead', 0)}  "
                      f"invalid {counts.get('invalid', 0)}  {rate:.1f}/{allowed:.0f} req/s  ETA {eta:.0f}s")
            final = store.is_final(job_id)
            if progress is not None:
                progress.update(bar, completed=done, detail=detail)
            elif not quiet and (final or time.monotonic() - last_line >= 5):
                click.echo(f"{job_id}: {done}/{total} done  {detail}")
                last_line = time.monotonic()
            if final:
                return snapshot(store, job_id)
            if sweep and time.monotonic() - last_sweep > SWEEP_EVERY_S:
                last_sweep = time.monotonic()
                republish_stuck(store, job_id, settings.recovery_idle)
            time.sleep(0.5)
    finally:
        if progress is not None:
            progress.stop()


def print_final(store: RowStore, job_id: str, results_file: str | None, program: str = "tagmango-import") -> None:
    """The final table, the dead letters by cause with the commands that requeue them (``program``: the command
    line as the user ran it), and the results file."""
    from rich.console import Console
    from rich.table import Table

    snap = snapshot(store, job_id, results_file)
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"Import {job_id}")
    for state in STATES:
        table.add_column(state.value, justify="right")
    table.add_row(*(str(snap["counts"][s.value]) for s in STATES))
    console.print(table)
    reasons = dead_reasons(store, job_id)
    if reasons:
        console.print("Dead letters by error code:")
        for code, n in reasons.most_common():
            console.print(f"  {code}: {n} row(s)    requeue: {program} requeue {job_id} --error-code {code}",
                          markup=False)
        console.print(f"  details: {program} dead {job_id}    all: {program} requeue {job_id} --all", markup=False)
    if results_file:
        console.print(f"Results: {results_file}")
