"""``requeue``: send a job's dead rows again, all of them, by cause, by row, or from a corrected file."""

from __future__ import annotations

from pathlib import Path

import click

from importer.commands.run import finish
from importer.commands.validate import plan_or_exit
from importer.config import Config
from importer.exitcodes import EXIT_INTERRUPTED, EXIT_OK
from importer.ingest.validate import Options
from importer.local.session import Session
from importer.matching import match_live
from importer.matching.corrections import corrections_from
from importer.matching.preflight import gate
from importer.report.follow import exit_code, snapshot
from tasks.requeue import requeue_rows


def requeue(config: Config, job: str | None, *, everything: bool, error_code: str | None, rows: set[int] | None,
            from_files: tuple[str, ...], options: Options, wait: bool, as_json: bool, results: str | None,
            mode: str | None = None) -> int:
    if not (everything or error_code or rows or from_files):
        raise click.UsageError("say which dead rows: --all, --error-code CODE, --rows 12,15-18 or --from FILE")
    session = Session(config)
    try:
        job_id = session.job_id(job)
        store = session.store
        job = store.job(job_id)
        door = session.door(session.credential_for(job))
        gate(door, quiet=as_json)  # before anything is requeued
        mode = mode or job.mode or "create"
        corrections = None
        if from_files:
            plan = plan_or_exit(from_files, options)
            match_live(door, store, plan, mode, quiet=as_json)  # what TagMango already has of the corrected rows
            corrections, problems = corrections_from(store, job_id, plan)
            for problem in problems:
                click.echo(f"  {problem}", err=True)
        outcome = requeue_rows(store, job_id, error_code=error_code, rows=rows, everything=everything,
                               corrections=corrections)
        if not as_json:
            click.echo(f"Requeued {outcome['requeued']} row(s) of {job_id}"
                       + (f"; {len(outcome['still_dead'])} chapter row(s) stay dead because their course is dead"
                          if outcome["still_dead"] else ""))
        if not outcome["requeued"]:
            return exit_code(snapshot(store, job_id))
        session.start_workers_for(store.job(job_id))
        if not (wait or session.embedded):
            return EXIT_OK
        return finish(session, job_id, door, as_json=as_json, results=results,
                      base=Path(from_files[0]).resolve().parent if from_files else None)  # next to the input
    except KeyboardInterrupt:
        click.echo("\nInterrupted; the requeued rows stay queued.", err=True)
        return EXIT_INTERRUPTED
    finally:
        session.close()
