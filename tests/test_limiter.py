"""The global rate limiter against the suite's real Redis; backoff and credentials as pure logic."""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from tasks.backoff import retry_delay
from tasks.credentials import NoCredentials, resolve
from tasks.limiter import RateLimiter, credential_key
from tests.helpers import TOKEN


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
    limiter = RateLimiter(redis_server.client(), limit=10, window=10.0, horizon=5.2)
    grants = [limiter.reserve("c") for _ in range(8)]
    assert [g.granted for g in grants] == [True] * 6 + [False] * 2
    step = limiter.interval  # (10 s + the edge margin) / 10
    assert grants[5].wait == pytest.approx(5 * step, abs=0.1) and grants[7].wait == pytest.approx(6 * step, abs=0.1)


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


def test_late_sends_cannot_overfill_the_window(redis_server, redis_url):
    """Slots taken long ago and used late all at once: the send log admits only what fits the window."""
    limiter = RateLimiter(redis_server.client(), limit=10, window=1.0, horizon=60)
    for _ in range(25):
        limiter.reserve("c")  # 25 slots over 2.5 s, as tasks re-scheduled towards them would hold
    time.sleep(1.2)  # every one of them comes back at once, late
    admitted = [limiter.admit("c") for _ in range(25)]
    assert admitted.count(0.0) == 10  # the budget of one window, no more
    assert all(0.5 < wait <= 1.06 for wait in admitted[10:])  # told when the window has room again
    time.sleep(max(admitted[10:]))
    assert limiter.admit("c") == 0.0


def test_lookups_go_ahead_of_the_schedule_but_not_past_the_cap_or_a_cool_down(redis_server, redis_url):
    limiter = RateLimiter(redis_server.client(), limit=10, window=1.0, horizon=60)
    for _ in range(30):
        limiter.reserve("c")  # the schedule is booked 3 s ahead by rows waiting for their slots
    started = time.monotonic()
    for _ in range(10):
        limiter.acquire_now("c")  # a lookup's pages do not queue behind them...
    assert time.monotonic() - started < 0.3
    limiter.acquire_now("c")  # ...but the 11th send in the window waits for room
    assert time.monotonic() - started >= 0.9
    limiter.cool_down("c", 1.0)  # a 429: nobody sends, lookups included
    paused_at = time.monotonic()
    assert limiter.admit("c") > 0.8
    limiter.acquire_now("c")
    assert time.monotonic() - paused_at >= 0.95
