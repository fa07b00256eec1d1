"""Shared fixtures: the sandbox over real HTTP on 127.0.0.1; Redis and workers live in tests/services.py."""

from __future__ import annotations

import os

import pytest

from importer.sandbox import SandboxConfig, serve_in_thread

TOKEN = "test-token-s3cr3t-0123456789abcdef"
HOST = "academy.example.com"


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
def sandbox(sandbox_factory):
    return sandbox_factory()
