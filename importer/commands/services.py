"""``flower`` and ``worker``: the services a user starts by hand (``run`` starts its own, importer.local.stack)."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from importer.config import Config
from importer.exitcodes import EXIT_OK, CommandError
from importer.local import flower as flower_setup
from importer.local.session import Session
from importer.local.stack import worker_argv


def flower(config: Config, port: int, address: str) -> int:
    session = Session(config, keep_running=True)
    auth, generated = flower_setup.auth_for(config)
    if generated:
        click.echo(f"Flower basic auth (set TAGMANGO_FLOWER_BASIC_AUTH=user:password to choose): {auth}")
    state = session.stack.dir
    click.echo(f"Flower on http://{address}:{port}  (state kept in {state / 'flower.db'}; Ctrl-C to stop)")
    proc = subprocess.Popen(flower_setup.command(port, address, state),
                            env=flower_setup.environment(config, session.url, auth))
    flower_setup.record(flower_setup.files(state), proc.pid, f"http://{address}:{port}")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return proc.wait()
    finally:
        (state / "flower" / "pid").unlink(missing_ok=True)


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
