"""``undo JOB [--dry-run] [--force]``: put back what a job changed, from its snapshot (importer.matching.undo).

The undo is a job of its own (rows enqueued like an import's: rate limit, retries, dead letters, results file),
with its own snapshot, so it can be undone too. It refuses (exit 4) when a value changed in TagMango since the job.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from importer.commands.run import finish
from importer.config import Config
from importer.exitcodes import EXIT_CHANGED_SINCE, EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK, CommandError
from importer.local.session import Session
from importer.matching import ReadProgress
from importer.matching.live import LiveCatalog
from importer.matching.preflight import gate
from importer.matching.undo import UndoPlan, plan_undo
from tasks import errors
from tasks.enqueue import enqueue


def undo(config: Config, job: str | None, *, dry_run: bool, force: bool, wait: bool, as_json: bool,
         results: str | None) -> int:
    session = Session(config)
    try:
        job_id = session.job_id(job)
        store = session.store
        record = store.job(job_id)
        if not store.is_final(job_id):
            raise CommandError(f"{job_id} is not finished: undo it once every row is final (status {job_id} "
                               "--watch), or stop it first", EXIT_CONFIG)
        running = record.get("undone_by")
        if running and store.job(running) is not None and not store.is_final(running):
            raise CommandError(f"{job_id} is being undone by {running}: wait for it (status {running} --watch)",
                               EXIT_CONFIG)
        door = session.door(session.credential_for(record))
        gate(door, quiet=as_json)
        shown = ReadProgress(door, as_json)
        try:
            plan = plan_undo(store, job_id, LiveCatalog(door, progress=shown.reads, on_wait=shown.wait,
                                                        on_notice=shown.notice))
        except errors.ApiError as exc:
            raise CommandError(f"could not read TagMango ({exc.status or ''} {exc.message}); nothing was undone",
                               EXIT_CONFIG) from None
        refused = bool(plan.conflicts) and not force
        _show(plan, record.get("undone_by"), as_json, refused=refused, dry_run=dry_run)
        if refused:
            return EXIT_CHANGED_SINCE
        if dry_run or not plan.rows:
            return EXIT_OK
        undo_id = enqueue(store, plan, record.api_url, record.host, label=f"undo of {job_id}", mode="merge")
        store.set_job(undo_id, sandbox=record.sandbox, undo_of=job_id)
        store.set_job(job_id, undone_by=undo_id)
        session.run_job(undo_id)
        if not as_json:
            click.echo(f"Enqueued {undo_id}: the undo of {job_id} ({len(plan.rows)} rows)")
        session.start_workers_for(store.job(undo_id))
        if not (wait or session.embedded):  # embedded, the local worker stops with this command: follow it
            if as_json:
                click.echo(json.dumps({"job": undo_id, "undo_of": job_id, **plan.summary()}))
            else:
                click.echo(f"Follow it with: {config.program} status {undo_id} --watch")
            return EXIT_OK
        return finish(session, undo_id, door, as_json=as_json, results=results, base=Path.cwd())
    except KeyboardInterrupt:
        click.echo("\nInterrupted; the undo's queued rows stay queued.", err=True)
        return EXIT_INTERRUPTED
    finally:
        session.close()


def _show(plan: UndoPlan, undone_by: str | None, as_json: bool, *, refused: bool, dry_run: bool) -> None:
    if as_json:
        if refused or dry_run or not plan.rows:
            click.echo(json.dumps({"undo_of": plan.job_id, "refused": refused, "dry_run": dry_run, **plan.summary(),
                                   "changes": plan.lines, "cannot": plan.cannot, "conflicts": plan.conflicts,
                                   "notes": plan.notes}, indent=2))
        return
    counts = plan.summary()
    click.echo(f"Undo of {plan.job_id} ({plan.reads} reads): {counts['restore']} to put back, {counts['delete']} "
               f"lesson(s) to delete, {counts['cannot']} TagMango cannot undo")
    if undone_by:
        click.echo(f"note: {plan.job_id} was undone before, by {undone_by}")
    for line in plan.lines:
        click.echo(line)
    for note in plan.notes:
        click.echo(f"  note: {note}")
    if plan.cannot:
        click.echo("Cannot be undone through TagMango's API (do it by hand):")
        for line in plan.cannot:
            click.echo(f"  ! {line}")
    if plan.conflicts:
        click.echo(("Refused: " if refused else "Forced over: ") + "changed in TagMango since the job:",
                   err=refused)
        for line in plan.conflicts:
            click.echo(f"  * {line}", err=refused)
        if refused:
            click.echo("Nothing was undone. Check those values; --force puts the old values back anyway.", err=True)
    if dry_run:
        click.echo("Dry run: nothing was written to TagMango.")
    elif not plan.rows and not refused:
        click.echo("Nothing to undo.")
