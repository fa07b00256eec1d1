"""Shared fixtures: the sandbox over real HTTP on 127.0.0.1; Redis and workers live in tests/services.py."""

from __future__ import annotations

import os

import pytest

from importer.sandbox import SandboxConfig, serve_in_thread
from tasks.credentials import Credentials
from tasks.services import Services
from tasks.settings import Settings
from tests.helpers import TOKEN, stop_kept


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch):
    """Tests never inherit a developer's TagMango or Redis settings."""
    for name in list(os.environ):
        if name.startswith("TAGMANGO_") or name == "REDIS_URL":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sandbox_factory(tmp_path):
    started = []

    def start(**overrides):
        config = SandboxConfig(**{"tokens": {TOKEN: None}, "seed": 1234, **overrides})
        running = serve_in_thread(config)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def kept(tmp_path):
    """A folder for CLI runs with ``--keep-running``; whatever they left running is stopped afterwards."""
    yield tmp_path
    stop_kept(tmp_path)


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory()


# -- real Redis and Celery workers (tests/services.py) ---------------------------------------------

from tests.services import RedisServer, Worker, worker_env  # noqa: E402


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """A clean database on the suite's own redis-server for every test."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def workers(tmp_path):
    """Start Celery workers with ``workers.start(env, n)``; all are stopped at the end of the test."""

    class Pool:
        def __init__(self) -> None:
            self.all: list[Worker] = []

        def start(self, env: dict, count: int = 1, concurrency: int = 8) -> list[Worker]:
            started = [Worker(env, tmp_path / f"worker{len(self.all) + i}.log", f"w{len(self.all) + i}",
                              concurrency).start() for i in range(count)]
            self.all.extend(started)
            return started

        def logs(self) -> str:
            return "\n".join(w.log() for w in self.all)

    pool = Pool()
    yield pool
    for w in pool.all:
        w.stop()


@pytest.fixture
def make_env(redis_url):
    def make(sandbox, token: str = TOKEN, **extra: str) -> dict:
        return worker_env(redis_url, sandbox.url, token, **{
            "TAGMANGO_HTTP_TIMEOUT": "3", "TAGMANGO_BACKOFF_BASE": "0.3", "TAGMANGO_BACKOFF_MAX": "3",
            "TAGMANGO_VISIBILITY_TIMEOUT": "20", "TAGMANGO_LEASE_SECONDS": "12",
            "TAGMANGO_RECOVERY_IDLE": "20", **extra})
    return make


# -- rows run in the test process (tests.helpers.run_in_process) -------------------------------------


@pytest.fixture
def services_factory(redis_url, sandbox):
    """``services_factory(token=TOKEN, **settings)``: the ``Services`` a worker would have, on the suite's Redis and
    sending to the sandbox with ``token`` (None: no credential at all); keyword overrides of ``Settings``."""
    made = []

    def make(*, token: str | None = TOKEN, **overrides: object) -> Services:
        settings = Settings(**{"redis_url": redis_url, "api_url": sandbox.url, "max_limiter_sleep": 2.0, **overrides})
        made.append(Services(settings, credentials=Credentials(api_url=sandbox.url, token=token)))
        return made[-1]

    yield make
    for services in made:
        services.close()


@pytest.fixture
def services(services_factory):
    """Services with the defaults of ``services_factory``."""
    return services_factory()
