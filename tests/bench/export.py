"""Benchmark (issue 22): ``export`` of the six real courses, and the round trip with all six.

``python -m tests.bench.run --only export``. The six courses of ../shared/data/course_trees are imported with
``run`` and a CLI worker into a sandbox with TagMango's limit (120 per 10 s) and 50-400 ms latency; then
``tagmango-import export -o catalog.xlsx`` is timed (requests from the sandbox's count, elapsed, the bound
1.25 x requests / 12 + 5 s). Then the round trip: Redis flushed (another machine) and the export run back into
the same host with ``--mode merge`` (writes must be 0), and into another host (its trees must equal the first's).
"""

from __future__ import annotations

import time
from pathlib import Path

from importer.sandbox import SandboxConfig, serve_in_thread
from tests.bench.cli import (
    CHAPTER_DESCRIPTION,
    HOST,
    MANGO,
    TOKEN,
    cli_env,
    cli_worker,
    course_tree_files,
    importer_cmd,
    last_line,
    load,
    log_dir,
    run_command,
    wait_workers_ready,
)
from tests.services import RedisServer

OTHER = "bench-other.example.com"


def trees(sandbox, host: str) -> list:
    return [(c["title"], c["description"], [(m["title"], [(ch["title"], ch["description"]) for ch in m["chapters"]])
                                            for m in c["modules"]]) for c in sandbox.tree(host)]


def bench_export(work: Path, redis: RedisServer, *, trees_folder: Path | None = None) -> dict:
    files = [str(f) for f in course_tree_files(trees_folder)]
    sets = ["--set", f"mangoes={MANGO}", "--set", f"chapter_description={CHAPTER_DESCRIPTION}"]
    folder = work / "export"
    folder.mkdir(parents=True, exist_ok=True)
    load0 = load()
    sandbox = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, latency_s=(0.05, 0.4), seed=1, rate_limit=120))
    worker = None
    try:
        redis.client().flushall()
        env = cli_env(TAGMANGO_REDIS_URL=redis.url, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN)
        worker = cli_worker(env, log_dir(work) / "export-worker.log")
        wait_workers_ready(redis.url, [worker])
        imported = run_command(importer_cmd("run", *files, "--host", HOST, *sets, "--results",
                                            str(folder / "import.results.xlsx")), env, folder, "export-import")
        if imported["rc"] != 0:
            raise RuntimeError(f"the import exited {imported['rc']}: {imported['stderr'][-2000:]}")
        source = trees(sandbox, HOST)
        before = sandbox.stats()
        load1 = load()
        exported = run_command(importer_cmd("export", "-o", str(folder / "catalog.xlsx"), "--host", HOST), env,
                               folder, "export-export")
        after = sandbox.stats()
        time.sleep(0.5)
        redis.client().flushall()  # another machine: nothing remembered
        writes = sandbox.stats()["writes"]
        merged = run_command(importer_cmd("run", str(folder / "catalog.xlsx"), "--mode", "merge", "--host", HOST,
                                          "--results", str(folder / "merge.results.xlsx")), env, folder,
                             "export-merge")
        merge_writes = sandbox.stats()["writes"] - writes
        other = run_command(importer_cmd("run", str(folder / "catalog.xlsx"), "--host", OTHER, "--results",
                                         str(folder / "other.results.xlsx")), env, folder, "export-other")
        copy = trees(sandbox, OTHER)
        same = sorted(copy) == sorted(source)  # every course alike, its modules and lessons in order
        same_order = [c[0] for c in copy] == [c[0] for c in source]  # courses are created side by side
        differ = next((f"{a[0]!r}" for a, b in zip(sorted(copy), sorted(source), strict=False) if a != b), "")
    finally:
        if worker is not None:
            worker.stop()
        sandbox.stop()
    requests = after["requests"] - before["requests"]
    bound = 1.25 * requests / 12 + 5
    lessons = sum(len(m[1]) for c in source for m in c[2])
    return {"scenario": "export (six real courses)", "courses": len(source), "lessons": lessons,
            "export exit": exported["rc"], "requests": requests, "elapsed s": round(exported["seconds"], 1),
            "bound s": round(bound, 1), "within bound": exported["rc"] == 0 and exported["seconds"] <= bound,
            "429s": after["rate_limited"] - before["rate_limited"],
            "merge back: exit, writes": f"{merged['rc']}, {merge_writes}",
            "other host: exit, same trees": f"{other['rc']}, {same}"
                                            + (f" (first differing: {differ})" if differ else ""),
            "same course order": same_order,
            "export stdout": last_line(exported["stdout"])[:160],
            "load before import": load0, "load before export": load1, "load after": load()}
