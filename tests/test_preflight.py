"""The credential check before anything is queued, and the producer finding its token where workers do."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from importer.matching import preflight
from tasks.credentials import Credential
from tasks.gateway import Gateway
from tasks.settings import Settings
from tests.helpers import HOST, TOKEN, cli, env_for

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"


def test_wrong_token_exits_3_within_seconds_with_one_request_and_nothing_queued(sandbox, redis_url, tmp_path):
    import redis

    env = env_for(tmp_path, TAGMANGO_REDIS_URL=redis_url, TAGMANGO_API_URL=sandbox.url,
                  TAGMANGO_API_TOKEN="not-the-token")
    started = time.monotonic()
    done = cli(tmp_path, "run", str(SAMPLES / "catalog.xlsx"), "--host", HOST, env=env, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert time.monotonic() - started < 15
    assert "TagMango refused the token" in done.stderr and "nothing was queued" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "not-the-token" not in done.stdout + done.stderr
    assert sandbox.stats()["requests"] <= 1
    client = redis.Redis.from_url(redis_url)
    assert client.zcard("tm:jobs") == 0 and client.llen("tagmango") == 0

    # requeue checks too, before touching a dead row (a job with dead rows from an earlier, good token)
    good = cli(tmp_path, "run", str(SAMPLES / "catalog_chapters.csv"), "--host", HOST, "--no-wait", "--json",
               env={**env, "TAGMANGO_API_TOKEN": TOKEN}, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    job_id = json.loads(good.stdout)["job"]
    again = cli(tmp_path, "requeue", job_id, "--all", env=env, timeout=60)
    assert again.returncode == 3 and "refused the token" in again.stderr


def test_run_finds_the_token_in_the_credentials_file(sandbox, redis_url, tmp_path):
    """Only TAGMANGO_CREDENTIALS_FILE has the host's token: run accepts it (as workers do) and checks it."""
    creds = tmp_path / "creds.yaml"
    creds.write_text(f"{HOST}: {TOKEN}\n")
    env = env_for(tmp_path, TAGMANGO_REDIS_URL=redis_url, TAGMANGO_API_URL=sandbox.url,
                  TAGMANGO_CREDENTIALS_FILE=str(creds))
    done = cli(tmp_path, "run", str(SAMPLES / "catalog_courses.csv"), "--host", HOST, "--no-wait", "--json",
               env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["total"] == 20
    stats = sandbox.stats()  # the check, and the Get Courses pages that look for these courses: no writes
    assert stats["writes"] == 0 and set(stats["by_route"]) == {"get_courses"}, stats["by_route"]
    other = cli(tmp_path, "run", str(SAMPLES / "catalog_courses.csv"), "--host", "other.example.com", env=env)
    assert other.returncode == 3 and "no API token" in other.stderr and "TAGMANGO_API_TOKEN" in other.stderr


@pytest.fixture
def check(redis_server, redis_url):
    """The token check through a door whose transport is ``handler`` (the suite's Redis holds the limiter)."""
    def run(handler) -> preflight.Verdict:
        gateway = Gateway.from_settings(redis_server.client(), Settings(), transport=httpx.MockTransport(handler))
        try:
            return preflight.check(gateway.door(Credential("https://api.test", HOST, "secret-token")))
        finally:
            gateway.close()
    return run


def test_account_level_403_is_refused_and_transient_trouble_is_not(check):
    _check = check
    with pytest.raises(preflight.Refused, match="COURSE_USER_NOT_CREATOR"):
        _check(lambda r: httpx.Response(403, json={"errorCode": "COURSE_USER_NOT_CREATOR", "message": "no"}))
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        assert request.url.params["limit"] == "1" and request.method == "GET"
        return httpx.Response(503, json={"message": "busy"})

    outcome = _check(flaky)
    assert not outcome.ok and len(calls) == preflight.ATTEMPTS and "going ahead" in outcome.note
    assert _check(lambda r: httpx.Response(200, json={"total": 0, "data": []})).ok

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(preflight.Refused, match="cannot reach TagMango"):
        _check(refused)
