"""What `run` starts on this machine when no Redis is configured: Redis, a worker, and the sandbox.

Everything lives under the state directory (``.tagmango/`` by default, ``TAGMANGO_STATE_DIR``): Redis
data with its append-only file, the sandbox's data, the worker's log. Processes started here are
stopped again when the job is final, unless ``--keep-running``; later commands (status, requeue,
flower) find them through the port files and reuse them, or start them again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from importer.config import Config
from importer.local.embedded import EmbeddedRedis, free_port
from tasks.defaults import DEFAULT_WORKER_CONCURRENCY, QUEUE, WORKER_POOL

SANDBOX_HOST = "academy.sandbox.local"
#: Mild faults for the demo, so that retries and adoption of committed-but-failed creates are visible.
#: A committed-but-failed create answers late half the time (12 s); the worker's read timeout against the
#: local sandbox is 8 s (``SANDBOX_HTTP_TIMEOUT``) so that the demo shows the timeout and adoption without
#: sitting through the real API's 30 s timeout.
DEMO_FAULTS = ["--error-rate", "0.03", "--drop-rate", "0.01", "--commit-fail-rate", "0.04", "--latency", "30-150",
               "--hang-seconds", "12", "--seed", "7"]
SANDBOX_HTTP_TIMEOUT = "8"


def _alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def worker_argv(*, concurrency: int = DEFAULT_WORKER_CONCURRENCY, loglevel: str = "WARNING",
                hostname: str | None = None) -> list[str]:
    """``-m celery ...`` for a worker of the import queue, as every starter runs it (run, `worker`, the tests):
    WORKER_POOL, ``concurrency`` rows in flight, events on for Flower, no gossip or mingle (workers share nothing but
    Redis)."""
    argv = ["-m", "celery", "-A", "tasks", "worker", "--pool", WORKER_POOL, "--concurrency", str(concurrency), "-Q",
            QUEUE, "-E", "--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    return argv + (["--hostname", hostname] if hostname else [])


class LocalStack:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dir = config.state_dir
        self.redis = EmbeddedRedis(self.dir)
        self.worker: subprocess.Popen | None = None
        self.sandbox: subprocess.Popen | None = None
        self.sandbox_url: str | None = None
        self.flower: subprocess.Popen | None = None

    # -- Redis ---------------------------------------------------------------------------------
    def start_redis(self) -> str:
        return self.redis.start()

    # -- sandbox -------------------------------------------------------------------------------
    def sandbox_token(self) -> str:
        from importer.sandbox.config import DEFAULT_TOKEN

        return self.config.credentials.token or DEFAULT_TOKEN

    def start_sandbox(self, token: str, faults: bool = True) -> str:
        """The sandbox as its own process, on the same port as last time (so ledgers stay valid)."""
        sdir = self.dir / "sandbox"
        sdir.mkdir(parents=True, exist_ok=True)
        port_file = sdir / "port"
        port = int(port_file.read_text()) if port_file.exists() else free_port()
        url = f"http://127.0.0.1:{port}"
        if _alive(sdir / "pid") and _up(url):
            self.sandbox_url = url
            return url
        log = open(sdir / "sandbox.log", "ab")  # noqa: SIM115 - handed to the child
        self.sandbox = subprocess.Popen(
            [sys.executable, "-m", "importer", "sandbox", "--port", str(port), "--token", token,
             "--state-dir", str(sdir), *(DEMO_FAULTS if faults else [])],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (sdir / "pid").write_text(str(self.sandbox.pid))
        port_file.write_text(str(port))
        deadline = time.monotonic() + 20
        while not _up(url):
            if self.sandbox.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start (see {sdir / 'sandbox.log'})")
            time.sleep(0.1)
        self.sandbox_url = url
        return url

    # -- worker --------------------------------------------------------------------------------
    def start_worker(self, redis_url: str, api_url: str, token: str, concurrency: int | None = None) -> None:
        """A Celery worker process; the token reaches it through its environment only."""
        pid_file = self.dir / "worker.pid"
        if _alive(pid_file):
            return
        env = {**self.config.environ, "TAGMANGO_REDIS_URL": redis_url, "TAGMANGO_API_URL": api_url,
               "TAGMANGO_API_TOKEN": token, "PYTHONUNBUFFERED": "1"}
        if api_url == self.sandbox_url and "TAGMANGO_HTTP_TIMEOUT" not in self.config.environ:
            env["TAGMANGO_HTTP_TIMEOUT"] = SANDBOX_HTTP_TIMEOUT
        log = open(self.dir / "worker.log", "ab")  # noqa: SIM115
        self.worker = subprocess.Popen(
            [sys.executable, *worker_argv(concurrency=concurrency or self.config.settings.worker_concurrency,
                                          hostname=f"local-{os.getpid()}@%h")],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        pid_file.write_text(str(self.worker.pid))

    # -- Flower (run --flower) ------------------------------------------------------------------
    def start_flower(self, redis_url: str, port: int = 5555) -> str:
        """Flower in the background (importer/local/flower.py), subscribed to events before this returns."""
        from importer.local import flower

        url = flower.known_url(self.dir)
        if url and _alive(self.dir / "flower" / "pid"):
            print(f"Flower already running on {url}", file=sys.stderr)
            return url
        auth, generated = flower.auth_for(self.config)
        port = port if _port_free(port) else free_port()
        self.flower = flower.start(self.config, redis_url, auth, port)
        url = flower.known_url(self.dir) or ""
        print(f"Flower on {url}" + (f"  basic auth {auth}" if generated else "  (TAGMANGO_FLOWER_BASIC_AUTH)"),
              file=sys.stderr)
        return url

    # -- shutdown ------------------------------------------------------------------------------
    def stop(self, keep_running: bool = False) -> None:
        if keep_running:
            return
        for proc, pid_file in ((self.flower, self.dir / "flower" / "pid"), (self.worker, self.dir / "worker.pid"),
                               (self.sandbox, self.dir / "sandbox" / "pid")):
            if proc is not None:  # only what this command started
                _terminate(proc.pid)
                pid_file.unlink(missing_ok=True)
        self.redis.stop()


def _terminate(pid: int, timeout: float = 40.0) -> None:
    """SIGTERM (Celery's warm shutdown hands unfinished rows back), SIGKILL after ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except OSError:
                return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_sandbox/stats", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
