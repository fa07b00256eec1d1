"""``flower`` and ``worker``: the services a user starts by hand (``run`` starts its own, importer.local.stack)."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from importer.config import Config
from importer.exitcodes import EXIT_OK, CommandError
from importer.local import flower as flower_setup
from importer.local.address import check_address
from importer.local.session import Session
from importer.local.stack import worker_argv
from importer.local.state import CHILD_UMASK


def flower(config: Config, port: int, address: str, allow_remote: bool = False) -> int:
    check_address("Flower", address, allow_remote)
    session = Session(config, keep_running=True)
    try:
        auth, generated = flower_setup.auth_for(config)
        if generated:
            click.echo(f"Flower basic auth (set TAGMANGO_FLOWER_BASIC_AUTH=user:password to choose): {auth}")
        state = session.stack.dir
        url = f"http://{address}:{port}"
        session.stack.attach(url=url)
        click.echo(f"Flower on {url}  (state kept in {state / 'flower.db'}; Ctrl-C or `{config.program} stop` to stop)")
        proc = subprocess.Popen(flower_setup.command(port, address, state),
                                env=flower_setup.environment(config, session.url, auth), umask=CHILD_UMASK)
        flower_setup.record(state, proc.pid, url)
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reaches Flower too; `stop` signals this command only
            proc.terminate()
            return proc.wait()
    finally:
        session.close()


def worker(config: Config, concurrency: int | None, loglevel: str) -> int:
    """``celery -A tasks worker`` for the import queue (exec'd: its pid is the worker's); ``concurrency`` None takes
    ``TAGMANGO_WORKER_CONCURRENCY`` (the settings' default when unset)."""
    if not config.redis_url:
        raise CommandError("set TAGMANGO_REDIS_URL (or REDIS_URL) to the Redis the importer uses")
    if not config.has_token:
        raise CommandError("set TAGMANGO_API_TOKEN or TAGMANGO_CREDENTIALS_FILE in the worker's environment")
    # Its own node name: two workers on one machine are two nodes for Flower and `celery inspect`.
    argv = worker_argv(concurrency=concurrency or config.settings.worker_concurrency, loglevel=loglevel,
                       hostname=f"tagmango-{os.getpid()}@%h")
    os.execvp(sys.executable, [sys.executable, *argv])
    return EXIT_OK  # not reached
