"""The rate limit with real workers: stalled requests cause no 429, each key gets its own pace whatever another
key's backlog, and a limit lower than ours is found from the first 429.

Short windows (2 s) keep these tests short; the benchmarks (tests/bench/run.py) measure the real 120 per 10 s.
"""

from __future__ import annotations

import time

from tasks.enqueue import enqueue
from tasks.limiter import RateLimiter, credential_key
from tasks.rowstore import RowStore
from tests.helpers import HOST, TOKEN, assert_consistent, plan_of, wait_final, write_catalog
from tests.services import wait_until


def test_stalled_requests_do_not_cause_a_429(sandbox_factory, make_env, workers, redis_url, tmp_path):
    """The server counts each request when it answers it, and every 4 s holds all requests arriving during
    1.5 s, then answers them together: a spread-out stream reaches its window as one burst. A limiter that
    counted requests when it sent them (the old send log) got 429s here; counting each request from its send
    until its answer gets none, at the full budget."""
    sandbox = sandbox_factory(rate_limit=20, rate_window_s=2.0, latency_s=(0.05, 0.3), count_after_latency=True,
                              stall_s=1.5, stall_every_s=4.0)
    workers.start(make_env(sandbox, TAGMANGO_RATE_LIMIT="20", TAGMANGO_RATE_WINDOW="2"), 2)
    store = RowStore.from_url(redis_url)
    job_id = enqueue(store, plan_of(*write_catalog(tmp_path / "cat", 90)), sandbox.url, HOST)
    wait_final(store, job_id, timeout=120)
    stats = sandbox.stats()
    assert stats["faults"].get("stalled", 0) >= 15, stats["faults"]  # requests were held and released together
    assert stats["rate_limited"] == 0, stats
    assert stats["max_in_window"] == 20  # the whole budget was used
    assert assert_consistent(store, job_id)["succeeded"] == 90


def test_a_keys_backlog_does_not_slow_another_key(sandbox_factory, make_env, workers, redis_url, tmp_path):
    """Key A has 150 rows queued when key B's 20 arrive: B goes at its own pace at once, not after A."""
    token_b, host_b = "second-token-0123456789abcdef", "second.example.com"
    sandbox = sandbox_factory(tokens={TOKEN: HOST, token_b: host_b}, latency_s=(0.05, 0.2), rate_window_s=2.0)
    creds = tmp_path / "creds.yaml"
    creds.write_text(f"{HOST}: {TOKEN}\n{host_b}: {token_b}\n")
    workers.start(make_env(sandbox, TAGMANGO_CREDENTIALS_FILE=str(creds), TAGMANGO_RATE_LIMIT="20",
                           TAGMANGO_RATE_WINDOW="2"), 1, concurrency=4)
    store = RowStore.from_url(redis_url)
    job_a = enqueue(store, plan_of(*write_catalog(tmp_path / "a", 150, prefix="A")), sandbox.url, HOST)
    wait_until(lambda: store.counts(job_a).get("succeeded", 0) >= 10, 30, message="key A under way")
    started = time.monotonic()
    job_b = enqueue(store, plan_of(*write_catalog(tmp_path / "b", 20, prefix="B")), sandbox.url, host_b)
    wait_final(store, job_b, timeout=60)
    took_b = time.monotonic() - started
    assert took_b < 5.0, took_b  # 20 rows at 10/s: about 2 s, not after A's 14 s backlog
    assert store.counts(job_a).get("succeeded", 0) < 120  # A is still going
    wait_final(store, job_a, timeout=60)
    assert sandbox.stats()["rate_limited"] == 0


def test_a_lower_limit_is_found_from_the_first_429(sandbox_factory, make_env, workers, redis_url, tmp_path):
    """The server allows 10 per 2 s, the workers believe 20 (as 60 per 10 s against the documented 120): a
    handful of 429s, then the limit the server had certainly counted, not a halving and a climb back."""
    sandbox = sandbox_factory(rate_limit=10, rate_window_s=2.0, latency_s=(0.05, 0.4))
    workers.start(make_env(sandbox, TAGMANGO_RATE_LIMIT="20", TAGMANGO_RATE_WINDOW="2",
                           TAGMANGO_MAX_ATTEMPTS="10"), 2)
    store = RowStore.from_url(redis_url)
    job_id = enqueue(store, plan_of(*write_catalog(tmp_path / "cat", 60)), sandbox.url, HOST)
    wait_final(store, job_id, timeout=90)
    assert assert_consistent(store, job_id)["succeeded"] == 60
    stats = sandbox.stats()
    assert 0 < stats["rate_limited"] <= 3, stats["rate_limited"]
    learned = RateLimiter(store.r, limit=20, window=2.0).effective_limit(credential_key(sandbox.url, HOST, TOKEN))
    assert 6 <= learned <= 10, learned  # what the server had certainly counted: close to its 10, never above
