"""Benchmark: whole course trees (20 courses × 5 modules × 8 lessons by default) through real workers.

``python -m tests.bench.run --only tree`` (or ``python -m tests.bench.tree``). The sandbox has TagMango's limit
(120 per 10 s per token) and 50-400 ms latency; rates come from the sandbox's own arrival times. Modules of a
course and lessons of a module go one after another (file order), so this measures whether enough chains run
side by side to keep the rate limit busy.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from importer.ingest.validate import build_plan
from importer.sandbox import SandboxConfig, serve_in_thread
from tasks.enqueue import enqueue
from tasks.rowstore import RowStore
from tests.bench.run import window_stats
from tests.services import RedisServer, Worker, wait_until, worker_env

TOKEN, HOST, MANGO = "bench-token-0123456789", "bench.example.com", "66c4964c11e7fef26751f3a7"


def curriculum_csv(path: Path, courses: int, modules: int, lessons: int) -> Path:
    lines = ["course_ref,course_title,mangoes,module_title,chapter_title,chapter_description"]
    lines += [f"T{c:03d},Tree course {c},{MANGO},Module {m},Lesson {c}.{m}.{n},About lesson {n}"
              for c in range(courses) for m in range(modules) for n in range(lessons)]
    path.write_text("\n".join(lines) + "\n")
    return path


def bench_tree(work: Path, redis: RedisServer, courses: int = 20, modules: int = 5, lessons: int = 8,
               workers: int = 2) -> dict:
    import httpx

    sandbox = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, latency_s=(0.05, 0.4), seed=1))
    redis.client().flushall()
    env = worker_env(redis.url, sandbox.url, TOKEN)
    procs = [Worker(env, work / f"tree{i}.log", f"tree{i}").start() for i in range(workers)]
    time.sleep(3)
    store = RowStore.from_url(redis.url)
    plan = build_plan([curriculum_csv(work / "tree.csv", courses, modules, lessons)])
    start = time.monotonic()
    job = enqueue(store, plan, sandbox.url, HOST)
    wait_until(lambda: store.is_final(job), 3600, 0.2)
    seconds = time.monotonic() - start
    arrivals = [t for ts in httpx.get(sandbox.url + "/_sandbox/arrivals").json().values() for t in ts]
    rate, peak = window_stats(arrivals)
    stats = sandbox.stats()
    counts = store.counts(job)
    tree = httpx.get(sandbox.url + "/_sandbox/tree", params={"host": HOST}).json()["courses"]
    exact = all(len(c["modules"]) == modules and all(len(m["chapters"]) == lessons for m in c["modules"])
                for c in tree) and len(tree) == courses
    for p in procs:
        p.stop()
    sandbox.stop()
    return {"tree": f"{courses} courses x {modules} modules x {lessons} lessons", "rows": len(plan.rows),
            "seconds": round(seconds, 1), "requests": stats["requests"], "req/s": round(rate, 2),
            "% of 12/s": round(100 * rate / 12, 1), "429s": stats["rate_limited"], "max in 10 s": peak,
            "succeeded": counts.get("succeeded", 0), "exact trees": exact,
            "ideal s": round(stats["requests"] / 12, 1)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        try:
            print(bench_tree(Path(tmp), redis))
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
