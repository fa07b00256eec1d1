"""``tagmango-import dashboard``: serve the dashboard with basic auth until Ctrl-C (or ``tagmango-import stop``),
reading the same Redis as the other commands.

It listens on 127.0.0.1 unless told otherwise; an address other machines can reach needs ``--allow-remote``
(the pages are plain HTTP: the basic-auth password crosses the network readable), and then comes with a warning.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import click

from importer.config import Config
from importer.exitcodes import EXIT_CHANGED_SINCE, EXIT_CONFIG, EXIT_OK, CommandError
from importer.local.address import check_address

DEFAULT_PORT = 8765


def serve(config: Config, port: int, address: str, flower_url: str | None, allow_remote: bool = False) -> int:
    import uvicorn

    from importer.dashboard.app import create_app
    from importer.dashboard.data import JobData
    from importer.dashboard.security import Guard
    from importer.local import flower
    from importer.local.session import Session

    check_address("dashboard", address, allow_remote)
    auth = config.dashboard_auth
    if not auth:
        auth = f"admin:{secrets.token_urlsafe(12)}"
        click.echo(f"Dashboard basic auth (set TAGMANGO_DASHBOARD_BASIC_AUTH=user:password to choose): {auth}")
    try:
        guard = Guard(auth)
    except ValueError as exc:
        click.echo(f"error: TAGMANGO_DASHBOARD_BASIC_AUTH: {exc}", err=True)
        return EXIT_CONFIG
    session = Session(config)
    try:
        settings = config.settings
        data = JobData(session.store, rate_limit=settings.rate_limit, rate_window=settings.rate_window)
        state = session.stack.dir

        def current_flower() -> str | None:
            if flower_url or config.flower_url:
                return (flower_url or config.flower_url).rstrip("/")
            return flower.known_url(state)

        def after_requeue(job_id: str) -> str | None:
            """Embedded mode: the rows need a worker on this machine; start one if none is running."""
            if not session.embedded or session.stack.worker():
                return None
            try:
                session.start_workers_for(session.store.job(job_id))
            except CommandError:
                return "No worker is running and none could be started (see the dashboard's terminal)."
            return "Started a local worker for them."

        def start_undo(job_id: str) -> tuple[str | None, str, bool]:
            return run_undo(config, session.store, state, job_id)

        app = create_app(data, guard, flower_url=current_flower, after_requeue=after_requeue,
                         allowed_hosts=sorted({"127.0.0.1", "localhost", address}), start_undo=start_undo)
        url = f"http://{address}:{port}"
        session.stack.attach(url=url)  # in the folder's registry: `stop` ends it
        click.echo(f"Dashboard on {url}  (Ctrl-C or `{config.program} stop` to stop)")
        try:
            uvicorn.Server(uvicorn.Config(app, host=address, port=port, log_level="warning", access_log=False)).run()
        except KeyboardInterrupt:
            pass
    finally:
        session.close()
    return EXIT_OK


def run_undo(config: Config, store, state: Path, job_id: str) -> tuple[str | None, str, bool]:  # noqa: ANN001
    """The Undo button: ``undo JOB`` as the command line runs it. Its dry run first (reads only; a refusal comes
    back to the page), then the undo itself in the background, in the state folder (``stop`` ends it), where it
    follows its job and writes its results file. Returns (the undo's job id, what to tell the user, refused)."""
    command = [sys.executable, "-m", "importer", "undo", job_id]
    env = dict(config.environ)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        check = subprocess.run([*command, "--dry-run", "--json"], env=env, capture_output=True, text=True,
                               timeout=UNDO_CHECK_TIMEOUT_S, cwd=state)
    except subprocess.TimeoutExpired:
        return None, (f"Undo not started: reading TagMango took over {UNDO_CHECK_TIMEOUT_S} s; use the command "
                      "line"), True
    if check.returncode not in (EXIT_OK, EXIT_CHANGED_SINCE):
        lines = (check.stderr or check.stdout).strip().splitlines()
        return None, f"Undo not started: {lines[-1] if lines else f'exit {check.returncode}'}", True
    text = check.stdout
    info = json.loads(text[text.index("{"):]) if "{" in text else {}
    if check.returncode == EXIT_CHANGED_SINCE:
        return None, "Undo refused: " + "; ".join(info.get("conflicts", [])) + \
            ". Nothing was undone; check those values (the command line's --force puts the old values back).", True
    cannot = f" {info['cannot']} thing(s) TagMango cannot undo: see `undo {job_id} --dry-run`." if info.get("cannot") \
        else ""
    if not info.get("restore") and not info.get("delete"):
        return None, f"Nothing to undo.{cannot}", False
    before = (store.job(job_id).get("undone_by") if store.job(job_id) else None)
    log = (state / "undo.log").open("ab")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=state, start_new_session=True)
    log.close()
    deadline = time.monotonic() + UNDO_START_TIMEOUT_S
    while time.monotonic() < deadline:
        undo_id = store.job(job_id).get("undone_by")
        if undo_id and undo_id != before:
            return undo_id, (f"Undo of {job_id} started: {info['restore']} value(s) to put back, {info['delete']} "
                             f"lesson(s) to delete.{cannot}"), False
        if proc.poll() is not None:
            return None, f"Undo not started (exit {proc.returncode}): see {state / 'undo.log'}", True
        time.sleep(0.2)
    return None, f"Undo still starting: see {state / 'undo.log'}", False


UNDO_CHECK_TIMEOUT_S = 600
UNDO_START_TIMEOUT_S = 60
