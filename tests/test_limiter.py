"""The global rate limiter against the suite's real Redis; backoff and credentials as pure logic."""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from tasks.backoff import retry_delay
from tasks.credentials import NoCredentials, resolve
from tasks.limiter import RateLimiter, credential_key
from tests.conftest import TOKEN


def test_slots_are_spread_evenly_across_processes_sharing_redis(redis_server, redis_url):
    limiters = [RateLimiter(redis_server.client(), limit=50, window=1.0) for _ in range(3)]  # 3 "workers"
    cred = credential_key("http://api", "h.example.com", TOKEN)
    times: list[float] = []
    lock = threading.Lock()

    def worker(limiter: RateLimiter) -> None:
        for _ in range(20):
            limiter.acquire(cred)
            with lock:
                times.append(time.monotonic())

    threads = [threading.Thread(target=worker, args=(lim,)) for lim in limiters for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times.sort()
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) == 120
    assert statistics.median(gaps) == pytest.approx(0.02, abs=0.006)  # 1 s / 50, not bursts
    # never more than the budget (+1 at the window's edge) in any 1 s window
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= 51


def test_far_slots_are_not_granted_beyond_the_horizon(redis_server, redis_url):
    limiter = RateLimiter(redis_server.client(), limit=10, window=10.0, horizon=5.0)
    grants = [limiter.reserve("c") for _ in range(8)]
    assert [g.granted for g in grants] == [True] * 6 + [False] * 2
    assert grants[5].wait == pytest.approx(5.0, abs=0.1) and grants[7].wait == pytest.approx(6.0, abs=0.1)


def test_cool_down_pauses_and_halves_the_rate(redis_server, redis_url):
    limiter = RateLimiter(redis_server.client(), limit=10, window=1.0, horizon=60)
    limiter.cool_down("c", 2.0)
    first = limiter.reserve("c")
    assert first.wait == pytest.approx(2.0, abs=0.05)
    second = limiter.reserve("c")
    assert second.wait - first.wait == pytest.approx(0.2, abs=0.02)  # 0.1 s interval at half rate
    assert limiter.rate_factor("c") == 0.5 and limiter.cooled_since("c") > 0
    limiter.cool_down("c", 2.0)  # within a second: same 429 burst, not halved again
    assert limiter.rate_factor("c") == 0.5
    # credentials are independent
    assert limiter.reserve("other").wait == pytest.approx(0, abs=0.01)


def test_credential_key_hides_the_token():
    key = credential_key("https://api-prod-new.tagmango.com", "A.example.com", TOKEN)
    assert TOKEN not in key and TOKEN[:8] not in key
    assert key == credential_key("https://api-prod-new.tagmango.com/", "a.example.com", TOKEN)
    assert key != credential_key("https://api-prod-new.tagmango.com", "a.example.com", TOKEN + "x")
    assert key != credential_key("https://api-prod-new.tagmango.com", "b.example.com", TOKEN)


def test_backoff_grows_is_capped_and_never_without_jitter():
    delays = [[retry_delay(a, 2.0, 60.0) for _ in range(50)] for a in range(1, 9)]
    for attempt, samples in enumerate(delays, start=1):
        expected = min(60.0, 2.0 * 2 ** (attempt - 1))
        assert all(0.8 * expected <= d <= expected for d in samples)
        assert len(set(samples)) > 40  # random every time, also at the cap
    assert retry_delay(1, 2.0, 60.0, retry_after=30) >= 30.1


def test_credentials_from_env_and_file(monkeypatch, tmp_path):
    with pytest.raises(NoCredentials, match="no API token") as info:
        resolve("h.example.com", "https://api-prod-new.tagmango.com")
    monkeypatch.setenv("TAGMANGO_API_TOKEN", TOKEN)
    cred = resolve("H.example.com", "https://api-prod-new.tagmango.com/")
    assert cred.token == TOKEN and TOKEN not in repr(cred)
    with pytest.raises(NoCredentials, match="configured for https://api-prod-new") as info:
        resolve("h.example.com", "http://127.0.0.1:9")
    assert TOKEN not in str(info.value)
    creds = tmp_path / "creds.yaml"
    creds.write_text("a.example.com: tok-a\nb.example.com: {token: tok-b, api_url: 'http://127.0.0.1:9'}\n")
    monkeypatch.setenv("TAGMANGO_CREDENTIALS_FILE", str(creds))
    assert resolve("a.example.com", "https://api-prod-new.tagmango.com").token == "tok-a"
    assert resolve("b.example.com", "http://127.0.0.1:9").token == "tok-b"
    assert resolve("c.example.com", "https://api-prod-new.tagmango.com").token == TOKEN  # falls back to env
