"""Fault-injection soak (opt-in: ``pytest -m soak``; about 5 minutes on 2 cores).

2,000 rows (1,000 courses, 1,000 chapters that depend on them) with the sandbox injecting 5% 5xx, 2% hangs,
1% dropped connections and 2% committed-but-failed creates; during the run a worker is SIGKILLed three
times and Redis is restarted once (append-only file on). Afterwards every row is final, the counters add
up, the sandbox holds no duplicate course and saw no 429, and the results file agrees with the sandbox.
"""

from __future__ import annotations

import random
import time

import pandas as pd
import pytest

from importer.ingest.validate import build_plan
from importer.report.results import write_results
from tasks.enqueue import enqueue
from tasks.rowstore import RowStore
from tests.helpers import HOST, assert_consistent, write_catalog

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1800)]



def test_soak(sandbox_factory, make_env, workers, redis_server, redis_url, tmp_path):
    sandbox = sandbox_factory(error_rate=0.05, hang_rate=0.02, hang_s=8.0, drop_rate=0.01, commit_fail_rate=0.02,
                              latency_s=(0.02, 0.2), seed=2026)
    env = make_env(sandbox, TAGMANGO_HTTP_TIMEOUT="5", TAGMANGO_BACKOFF_BASE="1", TAGMANGO_BACKOFF_MAX="10",
                   TAGMANGO_VISIBILITY_TIMEOUT="30", TAGMANGO_LEASE_SECONDS="20", TAGMANGO_MAX_ATTEMPTS="10",
                   TAGMANGO_RECOVERY_IDLE="60")  # the workers' own sweeper finds lost messages (tasks.recovery)
    live = workers.start(env, 2)
    store = RowStore.from_url(redis_url)
    started = time.monotonic()
    job_id = enqueue(store, build_plan(write_catalog(tmp_path / "soak", 1000, 1)), sandbox.url, HOST)
    rng = random.Random(7)
    events = {0.15: "kill", 0.35: "kill", 0.45: "redis", 0.60: "kill"}
    log = []
    while True:
        try:
            counts = store.counts(job_id)
            final = store.is_final(job_id)
        except Exception:  # noqa: BLE001 - Redis is restarting
            time.sleep(0.5)
            continue
        if final:
            break
        done = sum(counts.get(s, 0) for s in ("succeeded", "dead", "skipped", "invalid")) / 2000
        for at in sorted(events):
            if done >= at:
                action = events.pop(at)
                if action == "kill":
                    victim = live.pop(rng.randrange(len(live)))
                    victim.kill()
                    live += workers.start(env, 1)
                else:
                    redis_server.stop()
                    time.sleep(2)
                    redis_server.start()
                log.append((action, round(done, 2), round(time.monotonic() - started)))
        assert time.monotonic() - started < 1500, counts
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    assert [a for a, _, _ in log] == ["kill", "kill", "redis", "kill"], log
    assert all(w.proc.poll() is None for w in live), "a worker died on its own (Redis restart?)"
    states = assert_consistent(store, job_id)
    stats = sandbox.stats()
    counts = store.counts(job_id)
    print(f"\nSOAK rows=2000 time={elapsed:.0f}s states={dict(states)} faults={stats['faults']} "
          f"retries={counts.get('n_retries', 0)} adopted={counts.get('n_adopted', 0)} "
          f"recovered={counts.get('n_recovered', 0)} requests={stats['requests']} events={log}")
    assert states["succeeded"] == 2000, [(r.row_id, r.error, r.history) for r in store.rows(job_id)
                                         if r.state == "dead"][:3]  # (each attempt's error, to tell why)
    assert stats["rate_limited"] == 0
    assert stats["courses_by_host"][HOST] == 1000 and not stats["duplicate_titles"]
    # The results file agrees with the sandbox.
    path = write_results(store, job_id, tmp_path / "results.csv")
    results = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(results) == 2000 and set(results["status"]) == {"succeeded"}
    data = sandbox.data(HOST)
    courses = {c["_id"]: c for c in data["course"]}
    chapters = {c["_id"]: c for c in data["chapter"]}
    made = results[results["course_id"] != ""]
    assert len(made) == 1000
    assert all(courses[i]["title"] == t for i, t in zip(made["course_id"], made["title"], strict=True))
    patched = results[results["course_id"] == ""]
    assert all(chapters[i]["content"] == c for i, c in zip(patched["chapter_id"], patched["content"], strict=True))
