"""``run`` and ``validate --mode`` (``run --dry-run``): validate, check the token, match against TagMango, then
enqueue, follow, look for duplicates, and write the results file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from importer.commands.validate import plan_or_exit, print_problems, print_summary
from importer.config import Config
from importer.exitcodes import EXIT_INTERRUPTED, EXIT_INVALID_INPUT, EXIT_OK
from importer.ingest.plan import Plan
from importer.ingest.validate import Options
from importer.local.session import Session, real_target
from importer.matching import Matching, diffview, duplicates, match_live, matched_rows
from importer.matching.preflight import gate
from importer.matching.reconcile import Reconciled
from importer.report.follow import exit_code, follow, print_final, snapshot
from importer.report.results import default_path, write_results
from importer.report.tables import write_table
from tasks import errors
from tasks.credentials import Credential
from tasks.enqueue import enqueue, fingerprint
from tasks.gateway import Door
from tasks.recovery import resume
from tasks.rowstore import RowStore


def show_diff(plan: Plan, reconciled: Reconciled, report: str | None, as_json: bool) -> None:
    if report:
        write_table(report, diffview.REPORT_COLUMNS, diffview.report_rows(plan))
    if as_json:
        click.echo(json.dumps({"mode": reconciled.mode, "reads": reconciled.reads, "summary": plan.summary(),
                               "changes": diffview.report_rows(plan)}, indent=2, default=str))
        return
    for line in diffview.lines(plan, reconciled):
        click.echo(line)
    if report:
        click.echo(f"Changes written to {report}")


def compare(config: Config, files: tuple[str, ...], options: Options, *, mode: str, sandbox: bool,
            host: str | None, report: str | None, as_json: bool) -> int:
    """``validate --mode`` and ``run --dry-run``: the plan compared with TagMango (reads only), nothing written."""
    plan = plan_or_exit(files, options)
    if not as_json:
        print_problems(plan)
    if not plan.ok:
        if not as_json:
            print_summary(plan)
            click.echo("Not valid: fix the errors above before comparing with TagMango.")
        return EXIT_INVALID_INPUT
    cred = None if sandbox else real_target(config, host)  # no token: fail before starting anything
    session = Session(config)
    try:
        door = session.door(cred or session.target(sandbox, host))
        gate(door, quiet=as_json)
        reconciled = match_live(door, session.store, plan, mode, quiet=as_json)
        show_diff(plan, reconciled, report, as_json)
        if not as_json:
            print_summary(plan)
            click.echo("Dry run: nothing was written to TagMango.")
        return EXIT_OK
    finally:
        session.close()


def run(config: Config, files: tuple[str, ...], options: Options, *, sandbox: bool, host: str | None, wait: bool,
        skip_invalid: bool, dry_run: bool, keep_running: bool, as_json: bool, results: str | None,
        flower: bool = False, mode: str = "create") -> int:
    if dry_run:
        return compare(config, files, options, mode=mode, sandbox=sandbox, host=host, report=None, as_json=as_json)
    plan = plan_or_exit(files, options, defer=True)
    if not as_json:
        print_problems(plan)
        print_summary(plan)
    if not plan.ok and not skip_invalid:
        if as_json:
            click.echo(json.dumps({"valid": False, "problems": [p.as_dict() for p in plan.problems]}, indent=2))
        else:
            click.echo("Nothing was enqueued: fix the errors above, or use --skip-invalid to import the valid rows.")
        return EXIT_INVALID_INPUT
    cred = None if sandbox else real_target(config, host)  # no token: fail before starting anything
    session = Session(config, keep_running=keep_running)
    try:
        cred = cred or session.target(sandbox, host)
        door = session.door(cred)
        gate(door, quiet=as_json)  # TagMango accepts the token, or exit 3
        if flower:  # before the first row is queued, so Flower sees every event
            session.stack.start_flower(session.url) if session.embedded else click.echo(
                "note: --flower starts Flower in embedded mode only; start yours before `run`", err=True)
        store = session.store
        with session.job_lock(fingerprint(plan, cred.api_url, cred.host, mode), quiet=as_json):
            job_id = start_job(session, plan, cred, door, mode=mode, sandbox=sandbox, as_json=as_json)
            if session.embedded:
                session.stack.start_worker(session.url, cred.api_url, cred.token)
        if not (wait or session.embedded):
            click.echo(json.dumps(snapshot(store, job_id)) if as_json else
                       f"Follow it with: {config.program} status {job_id} --watch")
            return EXIT_OK
        return finish(session, job_id, door, as_json=as_json, results=results, base=Path(files[0]).resolve().parent)
    except KeyboardInterrupt:
        click.echo("\nInterrupted: workers stop after their current request. Run the same command again to "
                   "resume; nothing is sent twice.", err=True)
        return EXIT_INTERRUPTED
    finally:
        session.close()


def start_job(session: Session, plan: Plan, cred: Credential, door: Door, *, mode: str, sandbox: bool,
              as_json: bool) -> str:
    """The job of these files to this target: the unfinished one, followed (when another command or the local
    worker is on it) or resumed; else a new one, matched against TagMango and enqueued. The caller holds the job's
    run lock."""
    store = session.store
    existing = store.job_for_fingerprint(fingerprint(plan, cred.api_url, cred.host, mode))
    if existing and not store.is_final(existing):
        busy = session.following(store.job(existing))
        if busy:
            if not as_json:
                click.echo(f"Following {existing} (same files, same target): {busy}. This command only watches it "
                           "and writes its own results file.")
            return existing
        if not as_json:
            click.echo(f"Resuming {existing} (same files, same target).")
        if session.embedded:  # nobody is on it: its rows get fresh messages for the worker started next
            resume(store, existing)
        session.run_job(existing)
        return existing
    # Matched against what TagMango already has and written a chunk at a time; published once all are written.
    matching = Matching(door, store, mode, quiet=as_json)
    job_id = enqueue(store, plan, cred.api_url, cred.host, mode=mode, rows=matched_rows(matching, plan))
    store.set_job(job_id, sandbox=sandbox)
    session.run_job(job_id)
    if not as_json:
        for _row, note in matching.done().warnings:
            click.echo(f"note: {note}")
        click.echo(f"Enqueued {job_id}: {store.job(job_id).total} rows for {cred.host} at {cred.api_url} "
                   f"({matching.to_send} to send, {matching.settled} settled before sending; {mode} mode)")
    return job_id


def finish(session: Session, job_id: str, door: Door, *, as_json: bool, results: str | None,
           base: Path | None = None) -> int:
    """Follow the job until it is final, look for duplicates in TagMango, write the results file, sum up."""
    store = session.store
    follow(store, job_id, session.config.settings, quiet=as_json)
    check_duplicates(store, job_id, door, quiet=as_json)
    path = Path(results) if results else default_path(store.job(job_id), base)
    write_results_file(store, job_id, path)
    snap = snapshot(store, job_id, str(path))
    if as_json:
        click.echo(json.dumps(snap, indent=2))
    else:
        print_final(store, job_id, str(path), program=session.config.program)
    return exit_code(snap)


def write_results_file(store: RowStore, job_id: str, path: Path) -> None:
    """The results file, written beside its place and moved there whole: two commands following one job each
    write theirs, and a reader never sees half of one."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write_results(store, job_id, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_duplicates(store: RowStore, job_id: str, door: Door, *, quiet: bool = False) -> list[dict]:
    """Once the job is final: courses it created that TagMango now holds twice (importer.matching.duplicates). A
    check that cannot read TagMango now is said and left for a later ``status``."""
    try:
        found = duplicates.check(store, job_id, door)
    except errors.ApiError as exc:
        if not quiet:
            click.echo(f"warning: could not look for duplicates in TagMango ({exc.message}); `status` tries again",
                       err=True)
        return []
    if found and not quiet:
        click.echo(f"{len(found)} course(s) of this job are in TagMango more than once ({duplicates.CODE}):", err=True)
        for d in found[:10]:
            click.echo(f"  {d['sheet']} row {d['line']}: {d['message']}", err=True)
    return found
