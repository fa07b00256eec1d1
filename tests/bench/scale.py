"""Many creators at once: 16 keys × 120 course rows each, queued at once, two workers.

* ``keys16``: the workers as a user starts them, ``python -m importer worker`` with its defaults (threads pool,
  TAGMANGO_WORKER_CONCURRENCY's default of threads, events on), environment TAGMANGO_REDIS_URL,
  TAGMANGO_CREDENTIALS_FILE, TAGMANGO_API_URL only.
* ``pools``: the same load with workers started as ``python -m celery -A tasks worker -Q tagmango -E --loglevel
  WARNING --without-gossip --without-mingle --pool P --concurrency N`` for each P:N of ``--pools`` (default
  threads:8, threads:16, threads:32, gevent:64, gevent:200; gevent only if it is installed): how the product's
  default was chosen (README, Performance). Worker log lines that look like trouble are printed below the table.
* ``profile16``: ``keys16`` with ``py-spy record --gil`` on worker 0 (``pip install py-spy``), its busiest frames.
* ``rowcpu``: the runner alone, no Celery: ``run_row`` of 600 course rows in this process, one after the other,
  against the bench's Redis and a sandbox with no latency, no faults and no rate limit; the CPU of the thread that
  runs them (``time.thread_time``), per row. Less noisy than ``keys16``, for changes to the row's own path.

* ``sweep``: one round of the recovery sweeper (``tasks.recovery.stuck_rows``) over a queued job of ``--nowait-rows``
  course rows, every row parked: the CPU it takes in this process (a worker pays it every 30 s).

Each row carries ``reference loop s``: the seconds a fixed pure-Python loop takes just before, so that figures taken
while the (shared) machine ran slower or faster can be read side by side.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import time
from pathlib import Path

from tests.services import RedisServer

KEYS, ROWS = 16, 120
DEFAULT_POOLS = "threads:8,threads:16,threads:32,gevent:64,gevent:200"


def bench_keys16(work: Path, redis: RedisServer, keys: int = KEYS, rows: int = ROWS, **options: object) -> dict:
    from tests.bench.run import bench_keys

    return bench_keys(work, redis, keys, rows, label=f"keys{keys}", cli=True, **options)


def bench_pools(work: Path, redis: RedisServer, pools: str = DEFAULT_POOLS, keys: int = KEYS,
                rows: int = ROWS) -> list[dict]:
    from tests.bench.run import bench_keys

    out = []
    for item in pools.split(","):
        pool, _, n = item.partition(":")
        if pool == "gevent" and importlib.util.find_spec("gevent") is None:
            out.append({"scenario": f"keys{keys}", "workers": f"2 x celery --pool gevent -c {n}",
                        "succeeded": "skipped: gevent is not installed (pip install gevent)"})
            continue
        try:
            out.append(bench_keys(work, redis, keys, rows, label=f"keys{keys}", pool=pool, concurrency=int(n)))
        except Exception as exc:  # noqa: BLE001 - one pool's failure is a result of the comparison
            out.append({"scenario": f"keys{keys}", "workers": f"2 x celery --pool {pool} -c {n}",
                        "succeeded": f"failed: {type(exc).__name__}: {str(exc)[:300]}"})
    return out


def bench_profile16(work: Path, redis: RedisServer, keys: int = KEYS, rows: int = ROWS) -> tuple[dict, Path]:
    """keys16 with py-spy on worker 0; the row and the raw profile (``BENCH_PROFILE``, default profile16.txt in the
    log folder)."""
    from tests.bench.cli import log_dir
    from tests.bench.run import bench_keys

    out = Path(os.environ.get("BENCH_PROFILE") or log_dir(work) / "profile16.txt").resolve()
    return bench_keys(work, redis, keys, rows, label=f"keys{keys} (py-spy on worker 0)", cli=True, profile=out), out


def reference_loop() -> float:
    """Seconds a fixed pure-Python loop takes now (min of 3): how fast the machine runs at the moment."""
    best = float("inf")
    for _ in range(3):
        start, total = time.perf_counter(), 0
        for i in range(2_000_000):
            total += i * i
        best = min(best, time.perf_counter() - start)
    return round(best, 3)


def bench_rowcpu(work: Path, redis: RedisServer, rows: int = 600, warm: int = 50) -> dict:
    """CPU of the runner's thread per row run (``rowcpu`` above)."""
    from importer.sandbox import SandboxConfig, serve_in_thread
    from tasks.credentials import Credentials
    from tasks.enqueue import enqueue
    from tasks.runner import Message, run_row
    from tasks.services import Services
    from tasks.settings import Settings
    from tests.bench.cli import load
    from tests.helpers import HOST, TOKEN, plan_of, write_catalog

    load0, speed = load(), reference_loop()
    redis.client().flushall()
    sandbox = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, seed=1, rate_limit=1_000_000))
    services = Services(Settings(redis_url=redis.url, api_url=sandbox.url, rate_limit=1_000_000),
                        credentials=Credentials(api_url=sandbox.url, token=TOKEN))
    try:
        job = enqueue(services.store, plan_of(*write_catalog(work / "rowcpu", rows + warm)), sandbox.url, HOST)
        ids = [f"rowcpu.courses:{i}" for i in range(2, rows + warm + 2)]
        messages = [Message(job, r, services.store.generation(job, r)) for r in ids]
        for message in messages[:warm]:  # scripts loaded, connections made, imports done
            run_row(services, message)
        start = time.thread_time()
        outcomes = [type(run_row(services, message)).__name__ for message in messages[warm:]]
        cpu = time.thread_time() - start
        counts = services.store.counts(job)
    finally:
        services.close()
        sandbox.stop()
    return {"scenario": "rowcpu", "rows": rows, "us CPU/row run": round(1e6 * cpu / rows),
            "outcomes": ", ".join(f"{n} {o}" for o, n in sorted(collections.Counter(outcomes).items())),
            "succeeded": counts.get("succeeded", 0), "reference loop s": speed, "load before": load0,
            "load after": load()}


def bench_sweep(work: Path, redis: RedisServer, rows: int = 100_000) -> dict:
    """CPU of one ``stuck_rows`` round over a queued job of ``rows`` course rows (``sweep`` above)."""
    from importer.ingest.validate import build_plan
    from tasks.enqueue import enqueue
    from tasks.recovery import stuck_rows
    from tasks.rowstore import RowStore
    from tests.bench.cli import load
    from tests.bench.run import courses_csv

    load0, speed = load(), reference_loop()
    redis.client().flushall()
    store = RowStore.from_url(redis.url)
    job = enqueue(store, build_plan([courses_csv(work / "sweep.csv", rows, "W")]), "http://127.0.0.1:9",
                  "sweep.example.com")
    start = time.process_time()
    found = stuck_rows(store, job, 90.0)
    return {"scenario": "sweep", "rows": rows, "CPU s per round": round(time.process_time() - start, 3),
            "stuck": len(found), "reference loop s": speed, "load before": load0, "load after": load()}
