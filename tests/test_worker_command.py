"""``tagmango-import worker`` and the worker ``run`` starts: the pool and concurrency they hand to Celery."""

from __future__ import annotations

import os

import pytest

from importer.cli import main
from importer.config import Config
from importer.local.stack import LocalStack, worker_argv
from tasks.defaults import DEFAULT_WORKER_CONCURRENCY, WORKER_POOL


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.fixture
def execs(monkeypatch) -> list[list[str]]:
    """What ``tagmango-import worker`` would exec (it replaces itself with ``python -m celery ... worker``)."""
    seen: list[list[str]] = []

    def fake_exec(path: str, argv: list[str]) -> None:
        seen.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execvp", fake_exec)
    monkeypatch.setenv("TAGMANGO_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("TAGMANGO_API_TOKEN", "t")
    return seen


def worker(*args: str) -> None:
    with pytest.raises(SystemExit):
        main(["worker", *args])


def test_the_worker_command_takes_its_concurrency_from_the_environment(execs, monkeypatch):
    worker()
    assert option(execs[-1], "--concurrency") == str(DEFAULT_WORKER_CONCURRENCY)
    assert option(execs[-1], "--pool") == WORKER_POOL == "threads" and "-E" in execs[-1]
    monkeypatch.setenv("TAGMANGO_WORKER_CONCURRENCY", "12")
    worker()
    assert option(execs[-1], "--concurrency") == "12"
    worker("--concurrency", "3")  # the option wins
    assert option(execs[-1], "--concurrency") == "3"


def test_the_embedded_worker_takes_the_same_default(monkeypatch, tmp_path):
    started: list[list[str]] = []

    class FakePopen:
        pid = 0

        def __init__(self, argv: list[str], **kwargs: object) -> None:
            started.append(argv)

    monkeypatch.setattr("importer.local.stack.subprocess.Popen", FakePopen)
    environ = {"TAGMANGO_STATE_DIR": str(tmp_path), "TAGMANGO_WORKER_CONCURRENCY": "40"}
    LocalStack(Config.from_env(environ)).start_worker("redis://127.0.0.1:1/0", "http://api", "t")
    assert option(started[-1], "--concurrency") == "40"
    assert option(worker_argv(), "--concurrency") == str(DEFAULT_WORKER_CONCURRENCY)


def test_each_credentials_http_pool_allows_what_a_worker_runs_at_once():
    import redis

    from tasks.gateway import Gateway
    from tasks.settings import Settings

    client = redis.Redis()  # never connected: nothing is sent
    assert Gateway.from_settings(client, Settings(worker_concurrency=200)).max_connections == 200
    assert Gateway.from_settings(client, Settings(worker_concurrency=4)).max_connections == 32
