"""The operator's commands: run, status, jobs, dead, requeue, report, flower, worker.

Each finds Redis the same way: ``TAGMANGO_REDIS_URL``/``REDIS_URL`` if set (workers run elsewhere),
otherwise the embedded Redis in the state directory, started for the command if it is not running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from collections.abc import Callable
from typing import NoReturn

import click

from importer.exitcodes import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_INVALID_INPUT, EXIT_OK, EXIT_ROWS_FAILED, \
    CommandError
from importer.follow import follow, print_final, snapshot
from importer.local_stack import SANDBOX_HOST, LocalStack
from importer.results import default_path, write_results
from importer.plan import Plan
from importer.reconcile import Reconciled
from importer.validate import Options
from importer.validate_cmd import plan_or_exit, print_problems, print_summary
from tasks import operations
from tasks.rows import RowState
from tasks.rowstore import RowStore


def fail(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    """Stop the command with a one-line message and an exit code (the command line prints it)."""
    raise CommandError(message, code)


def exit_code(snap: dict) -> int:
    counts = snap["counts"]
    failed = counts["dead"] or counts["invalid"] or snap.get("duplicates") or not snap["final"]
    return EXIT_ROWS_FAILED if failed else EXIT_OK


class Session:
    """Redis (configured or embedded) plus whatever this command had to start; stops it at the end."""

    def __init__(self, keep_running: bool = False) -> None:
        from tasks.settings import redis_url

        self.keep_running = keep_running
        self.stack = LocalStack()
        self.url = redis_url()
        self.embedded = self.url is None
        if self.embedded:
            try:
                self.url = self.stack.start_redis()
            except RuntimeError as exc:
                fail(str(exc))
        import redis

        self.store = RowStore.from_url(self.url)
        try:
            self.store.r.ping()
        except redis.RedisError as exc:
            fail(f"cannot reach Redis at {_safe_url(self.url)}: {exc}")
        self._gateway = None

    def door(self, cred):  # noqa: ANN001, ANN201 - tasks.credentials.Credential -> tasks.gateway.Door
        """The one door to TagMango for a credential (tasks.gateway): the workers' limiter, shared."""
        from tasks.gateway import Gateway
        from tasks.settings import Settings

        if self._gateway is None:
            self._gateway = Gateway.from_settings(self.store.r, Settings.from_env())
        return self._gateway.door(cred)

    def job_id(self, job: str | None) -> str:
        job_id = job if job and job != "latest" else self.store.latest_job()
        if not job_id or self.store.job(job_id) is None:
            fail(f"no such job: {job}" if job else "no jobs yet", EXIT_CONFIG)
        return job_id

    def credential_for(self, job: dict):  # noqa: ANN201 - tasks.credentials.Credential
        """The token the job's rows will be sent with (the sandbox's own for a sandbox job, started if needed)."""
        from tasks.credentials import Credential

        if job.get("sandbox"):
            token = sandbox_token()
            api_url = self.stack.start_sandbox(token) if self.embedded else job["api_url"]
            if api_url != job["api_url"]:
                fail(f"the sandbox of this job ran at {job['api_url']}, it is now at {api_url}")
            return Credential(api_url, job["host"], token)
        return workers_credential(job["host"], job["api_url"])

    def start_workers_for(self, job: dict) -> None:
        """In embedded mode, a worker (and the sandbox, for a sandbox job) to process the job."""
        if not self.embedded:
            return
        cred = self.credential_for(job)
        self.stack.start_worker(self.url, cred.api_url, cred.token)

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()
        self.stack.stop(self.keep_running)


def _safe_url(url: str) -> str:
    """A Redis URL without its password, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return url.replace(parts.password, "***") if parts.password else url


# -- run -------------------------------------------------------------------------------------------


def sandbox_token() -> str:
    from importer.sandbox.config import DEFAULT_TOKEN

    return os.environ.get("TAGMANGO_API_TOKEN") or DEFAULT_TOKEN


def workers_credential(host: str, api_url: str):  # noqa: ANN201 - tasks.credentials.Credential
    """The token the workers will use for (host, api_url), or a one-line command error."""
    from importer import preflight

    try:
        return preflight.credential_for(host, api_url)
    except preflight.Refused as exc:
        fail(str(exc))


def target(session: Session | None, sandbox: bool, host: str | None):  # noqa: ANN201 - tasks.credentials.Credential
    """The credential an import or a dry run goes to: the sandbox (started if needed), or ``--host``/
    ``TAGMANGO_HOST`` with the token the workers will use (TAGMANGO_CREDENTIALS_FILE or TAGMANGO_API_TOKEN)."""
    from tasks.credentials import Credential, configured_api_url

    host = host or os.environ.get("TAGMANGO_HOST") or (SANDBOX_HOST if sandbox else None)
    if sandbox:
        assert session is not None, "the sandbox runs in a session"
        token = sandbox_token()
        return Credential(session.stack.start_sandbox(token), host, token)
    if not host:
        if not os.environ.get("TAGMANGO_API_TOKEN") and not os.environ.get("TAGMANGO_CREDENTIALS_FILE"):
            fail("TAGMANGO_API_TOKEN is not set: export your TagMango API key (never pass it on the command line), "
                 "or use --sandbox")
        fail("which creator? set TAGMANGO_HOST or --host to the whitelabel host, e.g. yourname.tagmango.com")
    return workers_credential(host, configured_api_url())


def show_diff(plan: Plan, reconciled: Reconciled, report: str | None, as_json: bool) -> None:
    from importer import diffview
    from importer.tables import write_table

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


def compare(files: tuple[str, ...], options: Options, *, mode: str, sandbox: bool, host: str | None,
            report: str | None, as_json: bool) -> int:
    """``validate --mode`` and ``run --dry-run``: the plan compared with TagMango (reads only), nothing written."""
    from importer import preflight
    from importer.matching import match_live

    plan = plan_or_exit(files, options)
    if not as_json:
        print_problems(plan)
    if not plan.ok:
        if not as_json:
            print_summary(plan)
            click.echo("Not valid: fix the errors above before comparing with TagMango.")
        return EXIT_INVALID_INPUT
    cred = None if sandbox else target(None, False, host)  # no token: fail before starting anything
    session = Session()
    try:
        cred = cred or target(session, sandbox, host)
        door = session.door(cred)
        preflight.gate(door, quiet=as_json)
        reconciled = match_live(door, session.store, plan, mode, quiet=as_json)
        show_diff(plan, reconciled, report, as_json)
        if not as_json:
            print_summary(plan)
            click.echo("Dry run: nothing was written to TagMango.")
        return EXIT_OK
    finally:
        session.close()


def run(files: tuple[str, ...], options: Options, *, sandbox: bool, host: str | None, wait: bool,
        skip_invalid: bool, dry_run: bool, keep_running: bool, as_json: bool, results: str | None,
        flower: bool = False, mode: str = "create") -> int:
    from importer import preflight
    from importer.matching import match_live
    from tasks.enqueue import enqueue, fingerprint
    from tasks.recovery import resume

    if dry_run:
        return compare(files, options, mode=mode, sandbox=sandbox, host=host, report=None, as_json=as_json)
    plan = plan_or_exit(files, options)
    if not as_json:
        print_problems(plan)
        print_summary(plan)
    if not plan.ok and not skip_invalid:
        if as_json:
            click.echo(json.dumps({"valid": False, "problems": [p.as_dict() for p in plan.problems]}, indent=2))
        else:
            click.echo("Nothing was enqueued: fix the errors above, or use --skip-invalid to import the valid rows.")
        return EXIT_INVALID_INPUT
    cred = None if sandbox else target(None, False, host)  # no token: fail before starting anything
    session = Session(keep_running=keep_running)
    try:
        cred = cred or target(session, sandbox, host)
        api_url, token, host = cred.api_url, cred.token, cred.host
        door = session.door(cred)
        preflight.gate(door, quiet=as_json)  # TagMango accepts the token, or exit 3
        if flower:  # before the first row is queued, so Flower sees every event
            session.stack.start_flower(session.url) if session.embedded else click.echo(
                "note: --flower starts Flower in embedded mode only; start yours before `run`", err=True)
        store = session.store
        existing = store.job_for_fingerprint(fingerprint(plan, api_url, host, mode))
        if existing and not store.is_final(existing):
            job_id = existing
            if not as_json:
                click.echo(f"Resuming {job_id} (same files, same target).")
            if session.embedded:
                resume(store, job_id)
        else:
            reconciled = match_live(door, store, plan, mode, quiet=as_json)  # what TagMango already has
            if not as_json:
                for _row, note in reconciled.warnings:
                    click.echo(f"note: {note}")
            job_id = enqueue(store, plan, api_url, host, mode=mode)
            store.set_job(job_id, sandbox=sandbox)
            if not as_json:
                click.echo(f"Enqueued {job_id}: {store.job(job_id)['total']} rows for {host} at {api_url} "
                           f"({len(plan.rows)} to send, {len(plan.unsent)} settled before sending; {mode} mode)")
        if session.embedded:
            session.stack.start_worker(session.url, api_url, token)
        elif not wait:
            click.echo(json.dumps(snapshot(store, job_id)) if as_json else
                       f"Follow it with: tagmango-import status {job_id} --watch")
            return EXIT_OK
        return finish(session, job_id, door, as_json=as_json, results=results, base=Path(files[0]).resolve().parent)
    except KeyboardInterrupt:
        click.echo("\nInterrupted: workers stop after their current request. Run the same command again to "
                   "resume; nothing is sent twice.", err=True)
        return EXIT_INTERRUPTED
    finally:
        session.close()


def finish(session: Session, job_id: str, door, *, as_json: bool, results: str | None,  # noqa: ANN001
           base: Path | None = None) -> int:
    """Follow the job until it is final, look for duplicates in TagMango, write the results file, sum up."""
    store = session.store
    follow(store, job_id, quiet=as_json)
    check_duplicates(store, job_id, door, quiet=as_json)
    path = Path(results) if results else default_path(store.job(job_id), base)
    write_results(store, job_id, path)
    snap = snapshot(store, job_id, str(path))
    if as_json:
        click.echo(json.dumps(snap, indent=2))
    else:
        print_final(store, job_id, str(path))
    return exit_code(snap)


def check_duplicates(store: RowStore, job_id: str, door, *, quiet: bool = False) -> list[dict]:  # noqa: ANN001
    """Once the job is final: courses it created that TagMango now holds twice (importer.duplicates). A check that
    cannot read TagMango now is said and left for a later ``status``."""
    from importer import duplicates
    from tasks import errors

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


# -- inspecting ------------------------------------------------------------------------------------


def status(job: str | None, watch: bool, as_json: bool) -> int:
    session = Session()
    try:
        job_id = session.job_id(job)
        if watch:
            follow(session.store, job_id, quiet=as_json)
        meta = session.store.job(job_id)
        if session.store.is_final(job_id) and not meta.get("duplicates_checked") and not meta.get("sandbox"):
            try:  # a job whose command did not follow it to the end (run --no-wait): look now
                check_duplicates(session.store, job_id, session.door(workers_credential(meta["host"],
                                                                                         meta["api_url"])),
                                 quiet=as_json)
            except CommandError as exc:
                if not as_json:
                    click.echo(f"note: not looking for duplicates in TagMango: {exc.message}", err=True)
        snap = snapshot(session.store, job_id)
        if as_json:
            click.echo(json.dumps(snap, indent=2))
        else:
            meta = session.store.job(job_id)
            click.echo(f"{job_id}  {meta['label']}  host {meta['host']}  api {meta['api_url']}")
            click.echo("  " + "  ".join(f"{k} {v}" for k, v in snap["counts"].items()) +
                       ("  (final)" if snap["final"] else ""))
            if meta.get("blocked"):
                click.echo(f"  blocked: {meta['blocked'].get('error_code') or meta['blocked'].get('http_status')} "
                           f"{meta['blocked'].get('message')}")
            for text in snap["notices"].values():
                click.echo(f"  note: {text}")
            for d in snap["duplicates"]:
                click.echo(f"  DUPLICATE_IN_TAGMANGO {d['sheet']} row {d['line']}: {d['message']}")
        return exit_code(snap) if snap["final"] else EXIT_OK
    finally:
        session.close()


def jobs(limit: int) -> int:
    from tasks.rowstore import iso

    session = Session()
    try:
        for job_id in session.store.jobs(limit):
            meta, snap = session.store.job(job_id), snapshot(session.store, job_id)
            c = snap["counts"]
            click.echo(f"{job_id}  {iso(meta['created_at'])}  {meta['label']}  {meta['host']}  total {snap['total']}  "
                       f"ok {c['succeeded']} skipped {c['skipped']} dead {c['dead']} invalid {c['invalid']}  "
                       f"{'final' if snap['final'] else 'running'}")
        return EXIT_OK
    finally:
        session.close()


DEAD_COLUMNS = ["sheet", "row", "key", "title", "http_status", "error_code", "message", "attempts", "request_path",
                "request_body"]


def dead_rows(store: RowStore, job_id: str, error_code: str | None, http_status: int | None) -> list[dict]:
    from tasks.requeue import select_dead

    out = []
    for row in select_dead(store, job_id, error_code=error_code, http_status=http_status, everything=True):
        error = row.error
        out.append({"sheet": row.sheet, "row": row.row, "key": row.key, "title": row.title,
                    "http_status": error.http_status if error else None, "error_code": error.code if error else None,
                    "message": error.message if error else None, "attempts": row.attempts,
                    "request_path": operations.get(row.op).request_path(row),
                    "request_body": json.dumps(row.body, ensure_ascii=False)})
    return out


def dead(job: str | None, error_code: str | None, http_status: int | None, export: str | None, as_json: bool) -> int:
    from importer.tables import write_table

    session = Session()
    try:
        job_id = session.job_id(job)
        rows = dead_rows(session.store, job_id, error_code, http_status)
        if export:
            write_table(export, DEAD_COLUMNS, rows)
            click.echo(f"{len(rows)} dead letter(s) written to {export}")
        elif as_json:
            click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        else:
            for r in rows:
                click.echo(f"{r['sheet']} row {r['row']}  {r['error_code'] or ''} {r['http_status'] or ''}  "
                           f"{r['message']}\n    {r['request_path']} {r['request_body']}")
            click.echo(f"{len(rows)} dead letter(s) in {job_id}")
        return EXIT_OK
    finally:
        session.close()


def report(job: str | None, output: str | None) -> int:
    session = Session()
    try:
        job_id = session.job_id(job)
        path = Path(output) if output else default_path(session.store.job(job_id))
        write_results(session.store, job_id, path)
        click.echo(f"Results of {job_id} written to {path}")
        return EXIT_OK
    finally:
        session.close()


# -- requeue ---------------------------------------------------------------------------------------


def parse_rows(text: str) -> set[int]:
    rows: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            rows.update(range(int(low), int(high or low) + 1))
        except ValueError:
            raise click.BadParameter(f"{part!r}: use numbers and ranges like 12,15-18", param_hint="--rows") from None
    return rows


def corrections_from(store: RowStore, job_id: str, files: tuple[str, ...], options: Options,
                     match: Callable[[Plan], object] | None = None) -> dict[str, dict]:
    """Re-validate a corrected file; map each of its rows to a dead row of the job, by key, else sheet + row.

    A correction replaces what the spreadsheet decides (body, title, key, parameters, ids given in the sheet,
    and which row of the job is the parent); the row's history stays. ``match`` (requeue's ``--mode``) first
    compares the corrected rows with TagMango: a row whose work TagMango already has is settled, one whose
    object exists becomes an update of what changed.
    """
    plan = plan_or_exit(files, options)
    if match is not None:
        match(plan)
    dead = list(store.rows(job_id, store.dead_row_ids(job_id)))
    by_key = {(r.kind, r.key): r for r in dead}
    by_place = {(r.kind, r.sheet.lower(), r.row): r for r in dead}
    dead_places = {(r.sheet.lower(), r.row) for r in dead}
    bad = {(u.sheet.lower(), u.row) for u in plan.unsent if u.state is RowState.INVALID}
    for problem in plan.errors:
        if (str(problem.sheet).lower(), problem.row) in dead_places:
            click.echo(f"  {problem}", err=True)
    planned = {r.row_id: r for r in [*plan.rows, *plan.unsent]}
    job_rows: dict | None = None
    corrections = {}
    for row in [*plan.rows, *(u for u in plan.unsent if u.state is RowState.SKIPPED and u.outcome)]:
        target = by_key.get((row.kind, row.key)) or by_place.get((row.kind, row.sheet.lower(), row.row))
        if target is None or (row.sheet.lower(), row.row) in bad:
            continue
        fix = {"body": row.body, "title": row.title, "key": row.key, "source": row.source, "params": row.params,
               "ids": dict(row.ids), "parent": None, "op": row.op}
        if row.is_final or row.released:  # settled or matched against TagMango: nothing to take from a parent
            fix.update(state=row.state, result=row.result, outcome=row.outcome, reason=row.reason,
                       released=row.released)
        parent = planned.get(row.parent) if row.parent else None
        if parent is not None:  # the parent row of the corrected file -> the same row of the job: key, else place
            if job_rows is None:
                job_rows = {}
                for r in store.rows(job_id):
                    job_rows[(r.kind, r.key)] = job_rows[(r.kind, r.sheet.lower(), r.row)] = r.row_id
            fix["parent"] = job_rows.get((parent.kind, parent.key)) or job_rows.get(
                (parent.kind, parent.sheet.lower(), parent.row))
        corrections[target.row_id] = fix
    return corrections


def requeue(job: str | None, *, everything: bool, error_code: str | None, rows: str | None,
            from_files: tuple[str, ...], options: Options, wait: bool, as_json: bool, results: str | None,
            mode: str | None = None) -> int:
    from importer.matching import match_live
    from importer.preflight import gate
    from tasks.requeue import requeue_rows

    if not (everything or error_code or rows or from_files):
        raise click.UsageError("say which dead rows: --all, --error-code CODE, --rows 12,15-18 or --from FILE")
    session = Session()
    try:
        job_id = session.job_id(job)
        store = session.store
        cred = session.credential_for(store.job(job_id))
        door = session.door(cred)
        gate(door, quiet=as_json)  # before anything is requeued
        mode = mode or store.job(job_id).get("mode") or "create"
        corrections = corrections_from(store, job_id, from_files, options,
                                       match=lambda plan: match_live(door, store, plan, mode, quiet=as_json)
                                       ) if from_files else None
        outcome = requeue_rows(store, job_id, error_code=error_code, rows=parse_rows(rows) if rows else None,
                               everything=everything, corrections=corrections)
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


# -- services --------------------------------------------------------------------------------------


def flower(port: int, address: str) -> int:
    from importer import flower as flower_setup

    session = Session(keep_running=True)
    auth, generated = flower_setup.auth_from_env()
    if generated:
        click.echo(f"Flower basic auth (set TAGMANGO_FLOWER_BASIC_AUTH=user:password to choose): {auth}")
    state = session.stack.dir
    click.echo(f"Flower on http://{address}:{port}  (state kept in {state / 'flower.db'}; Ctrl-C to stop)")
    proc = subprocess.Popen(flower_setup.command(port, address, state),
                            env=flower_setup.environment(session.url, auth))
    flower_setup.record(flower_setup.files(state), proc.pid, f"http://{address}:{port}")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return proc.wait()
    finally:
        (state / "flower" / "pid").unlink(missing_ok=True)


def worker(concurrency: int, loglevel: str) -> int:
    from tasks.settings import redis_url

    if not redis_url():
        fail("set TAGMANGO_REDIS_URL (or REDIS_URL) to the Redis the importer uses")
    if not os.environ.get("TAGMANGO_API_TOKEN") and not os.environ.get("TAGMANGO_CREDENTIALS_FILE"):
        fail("set TAGMANGO_API_TOKEN or TAGMANGO_CREDENTIALS_FILE in the worker's environment")
    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "threads",
                               "--concurrency", str(concurrency), "-Q", "tagmango", "-E", "--loglevel", loglevel])
    return EXIT_OK  # not reached
