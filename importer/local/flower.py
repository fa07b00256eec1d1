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

#: The task table's columns: what a row is (args) before how it went.
TASKS_COLUMNS = "name,args,state,received,runtime,retries,worker,uuid"
CONF_FILE = Path(__file__).with_name("flower_conf.py")


def auth_for(config: Config) -> tuple[str, bool]:
    """``user:password`` for Flower's basic auth, and whether it was generated (then it must be printed)."""
    auth = config.flower_auth
    return (auth, False) if auth else (f"admin:{secrets.token_urlsafe(12)}", True)


def command(port: int, address: str, state_dir: Path, *, max_tasks: int = 100000) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "tasks", "flower", f"--port={port}", f"--address={address}",
            f"--max_tasks={max_tasks}", f"--tasks_columns={TASKS_COLUMNS}", f"--conf={CONF_FILE}",
            "--persistent=True", f"--db={state_dir / 'flower.db'}", "--state_save_interval=15000"]


def environment(config: Config, redis_url: str, auth: str, dashboard_url: str | None = None) -> dict[str, str]:
    env = {**config.environ, "TAGMANGO_REDIS_URL": redis_url, "FLOWER_BASIC_AUTH": auth}
    env.pop("TAGMANGO_API_TOKEN", None)  # Flower never needs the token
    if dashboard_url:
        env["TAGMANGO_DASHBOARD_URL"] = dashboard_url
    return env


def files(state_dir: Path) -> Path:
    folder = state_dir / "flower"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start(config: Config, redis_url: str, auth: str, port: int, address: str = "127.0.0.1",
          timeout: float = 60.0) -> subprocess.Popen:
    """Flower in the background; returns once it serves its pages and listens to the events."""
    import redis

    state_dir = config.state_dir
    folder = files(state_dir)
    client = redis.Redis.from_url(redis_url)
    baseline = int(client.execute_command("PUBSUB", "NUMPAT"))
    log = open(folder / "flower.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(command(port, address, state_dir), env=environment(config, redis_url, auth), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    record(folder, proc.pid, f"http://{address}:{port}")
    url = f"http://{address}:{port}"
    user, _, password = auth.partition(":")
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"Flower did not start (see {folder / 'flower.log'})")
        # Flower's event receiver is a pattern subscription: once it is there, no event is lost.
        if _serving(url, (user, password)) and int(client.execute_command("PUBSUB", "NUMPAT")) > baseline:
            return proc
        time.sleep(0.2)


def record(folder: Path, pid: int, url: str) -> None:
    (folder / "pid").write_text(str(pid))
    (folder / "url").write_text(url)


def known_url(state_dir: Path) -> str | None:
    """The address of a Flower this state directory started (for the dashboard's link)."""
    path = state_dir / "flower" / "url"
    return path.read_text().strip() if path.exists() else None


def _serving(url: str, auth: tuple[str, str]) -> bool:
    try:
        return httpx.get(f"{url}/api/workers", auth=auth, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
