"""``tagmango-import dashboard``: serve the dashboard with basic auth until Ctrl-C (or ``tagmango-import stop``),
reading the same Redis as the other commands.

It listens on 127.0.0.1 unless told otherwise; an address other machines can reach needs ``--allow-remote``
(the pages are plain HTTP: the basic-auth password crosses the network readable), and then comes with a warning.
"""

from __future__ import annotations

import secrets

import click

from importer.config import Config
from importer.exitcodes import EXIT_CONFIG, EXIT_OK, CommandError
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

        app = create_app(data, guard, flower_url=current_flower, after_requeue=after_requeue,
                         allowed_hosts=sorted({"127.0.0.1", "localhost", address}))
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
