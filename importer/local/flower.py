"""Flower as the importer starts it: the row's job, sheet:row and title in the task table, state kept
across restarts (``<state dir>/flower.db``), basic auth, and (for ``run --flower``) up and subscribed to
the workers' events before the first row is queued.

The task messages carry ``(job id, sheet:row, title)`` as their arguments, so Flower's free-text search
finds every task of a job by its id. ``importer/local/flower_conf.py`` (passed with ``--conf``) makes the
arguments readable and names the job's dashboard page on each task's page.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from importer.config import Config
from importer.local.ports import DidNotStart
from importer.local.state import CHILD_UMASK, Registry, log_file, private_dir, without_secrets, write_private

#: The task table's columns: what a row is (args) before how it went.
TASKS_COLUMNS = "name,args,state,received,runtime,retries,worker,uuid"
CONF_FILE = Path(__file__).with_name("flower_conf.py")


class FlowerDidNotStart(DidNotStart):
    """``exited``: Flower ended on its own (its port taken between our check and its bind, say), not too slow."""


def auth_for(config: Config) -> tuple[str, bool]:
    """``user:password`` for Flower's basic auth, and whether it was generated (then it must be printed)."""
    auth = config.flower_auth
    return (auth, False) if auth else (f"admin:{secrets.token_urlsafe(12)}", True)


def command(port: int, address: str, state_dir: Path, *, max_tasks: int = 100000) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "tasks", "flower", f"--port={port}", f"--address={address}",
            f"--max_tasks={max_tasks}", f"--tasks_columns={TASKS_COLUMNS}", f"--conf={CONF_FILE}",
            "--persistent=True", f"--db={state_dir / 'flower.db'}", "--state_save_interval=15000"]


def environment(config: Config, redis_url: str, auth: str, dashboard_url: str | None = None) -> dict[str, str]:
    """Flower's environment: the Redis URL and its basic auth (never on its command line), no API token."""
    env = {**without_secrets(config.environ), "TAGMANGO_REDIS_URL": redis_url, "FLOWER_BASIC_AUTH": auth}
    if dashboard_url:
        env["TAGMANGO_DASHBOARD_URL"] = dashboard_url
    return env


def files(state_dir: Path) -> Path:
    return private_dir(state_dir / "flower")


def start(config: Config, redis_url: str, auth: str, port: int, address: str = "127.0.0.1",
          timeout: float = 60.0) -> subprocess.Popen:
    """Flower in the background; returns once it serves its pages and listens to the events."""
    import redis

    state_dir = config.state_dir
    folder = files(state_dir)
    client = redis.Redis.from_url(redis_url)
    baseline = int(client.execute_command("PUBSUB", "NUMPAT"))
    with log_file(folder / "flower.log") as log:
        proc = subprocess.Popen(command(port, address, state_dir), env=environment(config, redis_url, auth),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, umask=CHILD_UMASK)
    url = f"http://{address}:{port}"
    record(state_dir, proc.pid, url)
    user, _, password = auth.partition(":")
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            exited = proc.poll() is not None
            proc.kill()
            Registry(state_dir).remove(proc.pid)
            raise FlowerDidNotStart(f"Flower did not start on port {port} (see {folder / 'flower.log'})", exited)
        # Flower's event receiver is a pattern subscription: once it is there, no event is lost.
        if _serving(url, (user, password)) and int(client.execute_command("PUBSUB", "NUMPAT")) > baseline:
            return proc
        time.sleep(0.2)


def record(state_dir: Path, pid: int, url: str) -> None:
    """Flower in the folder's registry (``stop`` ends it), and its address for the dashboard's links."""
    Registry(state_dir).add("flower", pid, url=url)
    write_private(files(state_dir) / "url", url)


def known_url(state_dir: Path) -> str | None:
    """The address of a Flower this state folder started and that is running (for the dashboard's link)."""
    running = Registry(state_dir).services("flower")
    return str(running[-1].info.get("url")) if running else None


def _serving(url: str, auth: tuple[str, str]) -> bool:
    try:
        return httpx.get(f"{url}/api/workers", auth=auth, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
