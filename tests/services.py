"""Real services for the tests: a redis-server the suite starts itself, and Celery worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from importer.local.embedded import find_redis_server, start_redis_server
from importer.local.ports import free_port
from importer.local.stack import worker_argv


class RedisServer:
    """A private redis-server on a free port with its own data directory and append-only file."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.dir = directory
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = start_redis_server(self.dir, self.port, timeout=15)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.proc.wait(timeout=15)
        self.proc = None


class Worker:
    """``celery -A tasks worker`` as a separate process, its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str, concurrency: int = 8,
                 loglevel: str = "INFO") -> None:
        self.env, self.log_path, self.name, self.concurrency = env, log_path, name, concurrency
        self.loglevel = loglevel
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, *worker_argv(concurrency=self.concurrency, loglevel=self.loglevel,
                                          hostname=f"{self.name}@%h")],
            env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL the worker: no shutdown, no acks, in-flight calls cut off."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if hasattr(self, "log_file"):
            self.log_file.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def worker_env(redis_url: str, api_url: str, token: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGMANGO_") and k != "REDIS_URL"}
    env.update(TAGMANGO_REDIS_URL=redis_url, TAGMANGO_API_URL=api_url, TAGMANGO_API_TOKEN=token,
               PYTHONUNBUFFERED="1", **extra)
    return env


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def redis_binary_available() -> bool:
    try:
        return bool(find_redis_server())
    except RuntimeError:
        return shutil.which("redis-server") is not None
