"""Benchmarks (issue 6): quota use against the naive alternatives, and ingestion speed.

    python -m tests.bench.run [--rows 1200] [--skip-alternatives] [--ingest-rows 100000]

Starts its own redis-server, sandbox (real 120/10 s limit, 50-400 ms latency) and workers; prints a table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

from importer.sandbox import SandboxConfig, serve_in_thread
from importer.validate import Options, build_plan
from tasks.enqueue import enqueue
from tasks.rowstore import RowStore
from tests.services import RedisServer, Worker, wait_until, worker_env

TOKEN, HOST, MANGO = "bench-token-0123456789", "bench.example.com", "66c4964c11e7fef26751f3a7"


def window_stats(arrivals: list[float]) -> tuple[float, int]:
    arrivals = sorted(arrivals)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 1.0
    j, best = 0, 0
    for i, t in enumerate(arrivals):
        while arrivals[j] <= t - 10.0:
            j += 1
        best = max(best, i - j + 1)
    return (len(arrivals) - 1) / span, best


def fresh_sandbox():  # noqa: ANN201
    return serve_in_thread(SandboxConfig(tokens={TOKEN: None}, latency_s=(0.05, 0.4), seed=1))


def arrivals(sandbox) -> list[float]:  # noqa: ANN001
    data = httpx.get(sandbox.url + "/_sandbox/arrivals").json()
    return [t for ts in data.values() for t in ts]


def result(name: str, rows: int, sandbox, seconds: float) -> dict:  # noqa: ANN001
    rate, peak = window_stats(arrivals(sandbox))
    stats = sandbox.stats()
    return {"approach": name, "rows": rows, "seconds": round(seconds, 1), "req/s": round(rate, 2),
            "% of 12/s": round(100 * rate / 12, 1), "429s": stats["rate_limited"], "max in 10 s": peak,
            "ideal s": round(rows / 12, 1), "courses": stats["courses_by_host"].get(HOST, 0)}


def bench_ours(work: Path, redis: RedisServer, rows: int, workers: int) -> dict:
    sandbox = fresh_sandbox()
    redis.client().flushall()
    csv = work / f"ours{rows}.csv"
    csv.write_text("external_id,title,mangoes\n" + "".join(f"B{i},Bench {i},{MANGO}\n" for i in range(rows)))
    env = worker_env(redis.url, sandbox.url, TOKEN)
    procs = [Worker(env, work / f"w{i}.log", f"bench{i}").start() for i in range(workers)]
    time.sleep(3)
    store = RowStore.from_url(redis.url)
    start = time.monotonic()
    job = enqueue(store, build_plan([csv]), sandbox.url, HOST)
    wait_until(lambda: store.is_final(job), 3600, 0.2)
    out = result(f"tagmango-importer ({workers} workers)", rows, sandbox, time.monotonic() - start)
    for p in procs:
        p.stop()
    sandbox.stop()
    return out


def bench_sequential(rows: int) -> dict:
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    sandbox = fresh_sandbox()
    frame = pd.DataFrame({"title": [f"Seq {i}" for i in range(rows)], "mangoes": MANGO})
    client = httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}", "x-whitelabel-host": HOST})

    class Transient(Exception):
        pass

    @retry(retry=retry_if_exception_type(Transient), wait=wait_exponential(max=30), stop=stop_after_attempt(8))
    def send(body: dict) -> None:
        r = client.post("/api/v1/external/courses", json=body)
        if r.status_code == 429 or r.status_code >= 500:
            raise Transient(r.status_code)

    start = time.monotonic()
    for row in frame.itertuples():
        send({"title": row.title, "mangoes": [row.mangoes]})
    out = result("sequential loop (pandas+httpx+tenacity)", rows, sandbox, time.monotonic() - start)
    sandbox.stop()
    return out


def bench_textbook(work: Path, redis: RedisServer, rows: int) -> dict:
    sandbox = fresh_sandbox()
    redis.client().flushall()
    env = {**os.environ, "BENCH_REDIS_URL": redis.url, "BENCH_API_URL": sandbox.url, "BENCH_TOKEN": TOKEN,
           "BENCH_HOST": HOST}
    procs = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "tests.bench.textbook_app", "worker", "--pool",
                               "threads", "-c", "8", "-Q", "textbook", "--loglevel", "WARNING"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    time.sleep(3)
    os.environ["BENCH_REDIS_URL"] = redis.url
    from tests.bench.textbook_app import create

    start = time.monotonic()
    for i in range(rows):
        create.delay({"title": f"Textbook {i}", "mangoes": [MANGO]})
    wait_until(lambda: sandbox.stats()["courses_by_host"].get(HOST, 0) >= rows, 3600, 0.5)
    out = result("textbook Celery (rate_limit=12/s, 2 workers)", rows, sandbox, time.monotonic() - start)
    for p in procs:
        p.terminate()
        p.wait()
    sandbox.stop()
    return out


def bench_ingest(work: Path, rows: int) -> list[dict]:
    frame = pd.DataFrame({"external_id": [f"X{i}" for i in range(rows)], "title": [f"Course {i}" for i in range(rows)],
                          "description": "Some text", "mangoes": MANGO, "cover_image": "https://cdn.x.com/a.png",
                          "validity_in_days": 365, "enable_drm": "yes"})
    out = []
    for suffix in (".csv", ".xlsx"):
        path = work / f"ingest{suffix}"
        frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_excel(path, index=False)
        t0 = time.perf_counter()
        pd.read_csv(path) if suffix == ".csv" else pd.read_excel(path, engine="calamine")
        bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = build_plan([path], Options())
        ours = time.perf_counter() - t0
        assert plan.ok and len(plan.items) == rows
        out.append({"file": f"{rows} rows {suffix}", "bare pandas s": round(bare, 2), "validate s": round(ours, 2),
                    "ratio": round(ours / bare, 1)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-alternatives", action="store_true")
    parser.add_argument("--ingest-rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis = RedisServer(work / "redis").start()
        try:
            table = [bench_ours(work, redis, args.rows, args.workers)]
            if not args.skip_alternatives:
                table.append(bench_sequential(args.rows))
                table.append(bench_textbook(work, redis, args.rows))
            print(pd.DataFrame(table).to_markdown(index=False) if _has_tabulate() else pd.DataFrame(table))
            if args.ingest_rows:
                ingest = pd.DataFrame(bench_ingest(work, args.ingest_rows))
                print(ingest.to_markdown(index=False) if _has_tabulate() else ingest)
        finally:
            redis.stop()


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main()
