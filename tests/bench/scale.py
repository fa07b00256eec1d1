"""Many creators at once: 16 keys × 120 course rows each, queued at once, two workers.

* ``keys16``: the workers as a user starts them, ``python -m importer worker`` with its defaults (threads pool,
  TAGMANGO_WORKER_CONCURRENCY's default of threads, events on), environment TAGMANGO_REDIS_URL,
  TAGMANGO_CREDENTIALS_FILE, TAGMANGO_API_URL only.
* ``pools``: the same load with workers started as ``python -m celery -A tasks worker -Q tagmango -E --loglevel
  WARNING --without-gossip --without-mingle --pool P --concurrency N`` for each P:N of ``--pools`` (default
  threads:8, threads:16, threads:32, gevent:64, gevent:200; gevent only if it is installed): how the product's
  default was chosen (README, Performance). Worker log lines that look like trouble are printed below the table.
* ``profile16``: ``keys16`` with ``py-spy record --gil`` on worker 0 (``pip install py-spy``), its busiest frames.
"""

from __future__ import annotations

import importlib.util
import os
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
