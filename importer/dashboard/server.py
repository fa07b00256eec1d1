"""``tagmango-import dashboard``: serve the dashboard on 127.0.0.1 with basic auth until Ctrl-C (or
``tagmango-import stop``), reading the same Redis as the other commands."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click

from importer.config import Config
from importer.exitcodes import EXIT_CONFIG, EXIT_OK, CommandError

DEFAULT_PORT = 8765


def _alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def serve(config: Config, port: int, address: str, flower_url: str | None) -> int:
    import uvicorn

    from importer.local import flower
    from importer.dashboard.app import create_app
    from importer.dashboard.data import JobData
    from importer.dashboard.security import Guard
    from importer.local.session import Session

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
    settings = config.settings
    data = JobData(session.store, rate_limit=settings.rate_limit, rate_window=settings.rate_window)
    state = session.stack.dir

    def current_flower() -> str | None:
        if flower_url or config.flower_url:
            return (flower_url or config.flower_url).rstrip("/")
        return flower.known_url(state) if _alive(state / "flower" / "pid") else None

    def after_requeue(job_id: str) -> str | None:
        """Embedded mode: the rows need a worker on this machine; start one if none is running."""
        if not session.embedded or _alive(state / "worker.pid"):
            return None
        try:
            session.start_workers_for(session.store.job(job_id))
        except CommandError:
            return "No worker is running and none could be started (see the dashboard's terminal)."
        return "Started a local worker for them."

    app = create_app(data, guard, flower_url=current_flower, after_requeue=after_requeue,
                     allowed_hosts=sorted({"127.0.0.1", "localhost", address}))
    folder = state / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pid").write_text(str(os.getpid()))
    (folder / "url").write_text(f"http://{address}:{port}")
    click.echo(f"Dashboard on http://{address}:{port}  (Ctrl-C or `tagmango-import stop` to stop)")
    try:
        uvicorn.Server(uvicorn.Config(app, host=address, port=port, log_level="warning", access_log=False)).run()
    except KeyboardInterrupt:
        pass
    finally:
        (folder / "pid").unlink(missing_ok=True)
        session.close()
    return EXIT_OK
