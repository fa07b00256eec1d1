"""Benchmarks (issue 6). Starts its own redis-server, sandboxes (real 120/10 s limit, 50-400 ms latency) and
workers, and prints tables.

    python -m tests.bench.run                      # everything (about 20 minutes on 2 cores)
    python -m tests.bench.run --only quota,ingest  # quota: ours vs a sequential loop vs textbook Celery
                                                   # key1, keys4, keys8: 1/4/8 keys at once, 300 rows each
                                                   # limit60: 1 key, TagMango allows 60 per 10 s
                                                   # profile: keys4 with py-spy on one worker
                                                   # ours: only ours (2 workers)
                                                   # scale: 4 workers; two-hosts: 2 tokens at once
                                                   # ingest: validate vs bare pandas; enqueue: vs apply_async loop
                                                   # footprint: worker RSS over 5,000 rows, Redis bytes per row
                                                   # tree: 20 courses x 5 modules x 8 lessons

As a user runs the product (`python -m importer ...` subprocesses; workers = `python -m importer worker`, its
defaults; see tests/bench/cli.py and tests/bench/scale.py). Every table row carries the load average
(1/5/15 min) before and after it; the machine is shared, so read the figures with it.

    python -m tests.bench.run --only keys16        # 16 keys x 120 course rows at once, 2 CLI workers, events on:
                                                   #   per-key and total req/s, 429s, most in 10 s per key,
                                                   #   worker CPU ms per request, succeeded/total
    python -m tests.bench.run --only key1,keys4 --cli-workers   # the same with CLI workers
    python -m tests.bench.run --only nowait        # `run FILE --no-wait` of 100,000 course rows (--nowait-rows N,
                                                   #   --nowait-quoted: a quoted cell in every tenth row):
                                                   #   wall time, peak RSS, Redis bytes per row, exit code
    python -m tests.bench.run --only validate      # `validate FILE` (CSV, xlsx) vs a bare pandas read, fresh
                                                   #   processes, min of 3 (--validate-rows N)
    python -m tests.bench.run --only match6,match6-60   # six real course trees imported with `run` + a CLI
                                                   #   worker, Redis flushed, then `validate --mode merge` timed
                                                   #   against 1.25 x requests / 12 + 4 s (limit 60: 1.3 x
                                                   #   requests / 6 + 6 s)
    python -m tests.bench.run --only export        # six real course trees imported with `run`, then `export`
                                                   #   timed against 1.25 x requests / 12 + 5 s, merged back
                                                   #   (0 writes) and run into another host (same trees)
    python -m tests.bench.run --only twomachines   # one 60-course file run at once from two folders, two Redis
                                                   #   servers: exit codes, courses, duplicated titles, 429s
    python -m tests.bench.run --only resume        # tasks.recovery.resume of a queued 100,000-row job, a process of
                                                   #   its own: wall time, peak RSS (--nowait-rows N)
    python -m tests.bench.run --only matchbig      # `validate --mode merge` of 10,000 course rows against a creator
                                                   #   with those 10,000 courses, every row matched by its title
                                                   #   (--match-courses N, --match-mode M), no rate limit: the
                                                   #   importer's own time
    python -m tests.bench.run --only pools         # research: keys16 with celery --pool threads/gevent x N
                                                   #   (--pools threads:8,gevent:64,... --pool-rows N)
    python -m tests.bench.run --only profile16     # keys16 with py-spy --gil on worker 0, top 15 frames
    python -m tests.bench.run --only rowcpu        # the runner alone (no Celery): CPU per row run of 600 rows in
                                                   #   this process, no latency, no limit
    python -m tests.bench.run --only sweep         # one recovery sweep over a queued 100,000-row job (--nowait-rows)

BENCH_LOG_DIR=DIR keeps the workers' logs and the commands' output there.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

from importer.ingest.validate import Options, build_plan
from importer.sandbox import SandboxConfig, serve_in_thread
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


def fresh_sandbox():
    return serve_in_thread(SandboxConfig(tokens={TOKEN: None}, latency_s=(0.05, 0.4), seed=1))


def arrivals(sandbox) -> list[float]:
    data = httpx.get(sandbox.url + "/_sandbox/arrivals").json()
    return [t for ts in data.values() for t in ts]


def result(name: str, rows: int, sandbox, seconds: float) -> dict:
    rate, peak = window_stats(arrivals(sandbox))
    stats = sandbox.stats()
    return {"approach": name, "rows": rows, "seconds": round(seconds, 1), "req/s": round(rate, 2),
            "% of 12/s": round(100 * rate / 12, 1), "429s": stats["rate_limited"], "max in 10 s": peak,
            "ideal s": round(rows / 12, 1), "courses": stats["courses_by_host"].get(HOST, 0)}


def courses_csv(path: Path, rows: int, prefix: str = "B", description: bool = False, quoted: bool = False) -> Path:
    """``rows`` course rows: external_id,title,mangoes (and a short description with ``description``; with
    ``quoted`` every tenth description holds a comma, so it is in quotes, as Excel writes it)."""
    if description:
        def about(i: int) -> str:
            return f'"About course {prefix}{i}, in short"' if quoted and i % 10 == 0 else f"About course {prefix}{i}"

        path.write_text("external_id,title,mangoes,description\n" + "".join(
            f"{prefix}{i},Bench {prefix}{i},{MANGO},{about(i)}\n" for i in range(rows)))
        return path
    path.write_text("external_id,title,mangoes\n" + "".join(f"{prefix}{i},Bench {prefix}{i},{MANGO}\n"
                                                              for i in range(rows)))
    return path


def bench_ours(work: Path, redis: RedisServer, rows: int, workers: int) -> dict:
    sandbox = fresh_sandbox()
    redis.client().flushall()
    csv = courses_csv(work / f"ours{rows}.csv", rows)
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
    from tests.bench.cli import load

    out = []
    for suffix in (".csv", ".xlsx"):
        load0 = load()
        path = work / f"ingest{suffix}"
        frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_excel(path, index=False)
        t0 = time.perf_counter()
        pd.read_csv(path) if suffix == ".csv" else pd.read_excel(path, engine="calamine")
        bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = build_plan([path], Options())
        ours = time.perf_counter() - t0
        assert plan.ok and len(plan.rows) == rows, plan.summary()
        out.append({"file": f"{rows} rows {suffix}", "bare pandas s": round(bare, 2), "validate s": round(ours, 2),
                    "ratio": round(ours / bare, 1), "load before": load0, "load after": load()})
    return out


def bench_two_hosts(work: Path, redis: RedisServer, rows: int) -> dict:
    """Two creators at once: two hosts, two tokens (a credentials file), 2 workers, one sandbox."""
    token2, host2 = "bench-token-second-987654", "second.example.com"
    sandbox = serve_in_thread(SandboxConfig(tokens={TOKEN: HOST, token2: host2}, latency_s=(0.05, 0.4), seed=1))
    redis.client().flushall()
    creds = work / "creds.yaml"
    creds.write_text(f"{HOST}: {TOKEN}\n{host2}: {token2}\n")
    env = worker_env(redis.url, sandbox.url, "unused", TAGMANGO_CREDENTIALS_FILE=str(creds))
    procs = [Worker(env, work / f"h{i}.log", f"hosts{i}").start() for i in range(2)]
    time.sleep(3)
    store = RowStore.from_url(redis.url)
    start = time.monotonic()
    jobs = [enqueue(store, build_plan([courses_csv(work / f"{p}.csv", rows, p)]), sandbox.url, h)
            for p, h in (("H1x", HOST), ("H2x", host2))]
    wait_until(lambda: all(store.is_final(j) for j in jobs), 3600, 0.2)
    seconds = time.monotonic() - start
    per_token = httpx.get(sandbox.url + "/_sandbox/arrivals").json()
    rates = {label: window_stats(ts)[0] for label, ts in per_token.items()}
    total_rate, peak = window_stats([t for ts in per_token.values() for t in ts])
    stats = sandbox.stats()
    for p in procs:
        p.stop()
    sandbox.stop()
    return {"approach": "tagmango-importer, 2 hosts x 2 tokens (2 workers)", "rows": 2 * rows,
            "seconds": round(seconds, 1), "req/s": round(total_rate, 2), "% of 12/s": round(100 * total_rate / 12, 1),
            "429s": stats["rate_limited"], "max in 10 s": max(stats["max_in_window_by_token"].values()),
            "ideal s": round(rows / 12, 1), "courses": sum(stats["courses_by_host"].values()),
            "per token req/s": ", ".join(f"{r:.2f}" for r in rates.values())}


def redis_calls(redis: RedisServer) -> tuple[int, int]:
    """(commands, script calls) Redis has run so far (commands inside Lua scripts included)."""
    stats = redis.client().info("commandstats")
    scripts = sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    return sum(v["calls"] for v in stats.values()), scripts


def worker_cpu(procs: list[Worker]) -> float:
    """CPU seconds (user + system, children included) the workers have used so far."""
    import psutil

    total = 0.0
    for w in procs:
        t = psutil.Process(w.proc.pid).cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
    return total


def start_key_workers(work: Path, env: dict[str, str], workers: int, *, cli: bool, pool: str | None,
                      concurrency: int | None, loglevel: str | None) -> list:
    """The workers of a keys scenario, started one of three ways:

    * ``cli``: ``python -m importer worker`` as a user starts it (its defaults unless ``concurrency``/``loglevel``);
    * ``pool``: ``python -m celery -A tasks worker ... --pool POOL --concurrency N`` (the pool comparison);
    * otherwise ``tests.services.Worker`` (threads pool, ``concurrency`` threads, its own node name).
    """
    from tests.bench.cli import celery_worker, cli_worker, log_dir

    logs = log_dir(work)
    if cli:
        options = [*(["--concurrency", str(concurrency)] if concurrency else []),
                   *(["--loglevel", loglevel] if loglevel else [])]
        return [cli_worker(env, logs / f"keys-cli{i}.log", *options) for i in range(workers)]
    if pool:
        return [celery_worker(env, logs / f"keys-{pool}{concurrency}-{i}.log", pool, concurrency or 8)
                for i in range(workers)]
    return [Worker(env, logs / f"k{i}.log", f"keys{i}", concurrency or 8, loglevel or "WARNING").start()
            for i in range(workers)]


LOG_PROBLEMS = ("Traceback", "ERROR", "CRITICAL", "Error:", "Exception", "WARNING")


def log_problems(procs: list) -> list[str]:
    """Distinct lines of the workers' logs that look like trouble (a traceback, an error, a logged warning), counted;
    Python's warnings printed at start-up (Celery's SecurityWarning when run as root) do not match."""
    seen: dict[str, int] = {}
    for p in procs:
        for line in p.log().splitlines():
            if any(word in line for word in LOG_PROBLEMS):
                key = line.split("] ", 1)[-1].strip()[:200]
                seen[key] = seen.get(key, 0) + 1
    return [f"{n} x {line}" for line, n in seen.items()]


def bench_keys(work: Path, redis: RedisServer, keys: int, rows: int, *, label: str, limit: int = 120,
               workers: int = 2, concurrency: int | None = None, count_after_latency: bool = False,
               loglevel: str | None = None, profile: Path | None = None, cli: bool = False, pool: str | None = None,
               **worker_settings: str) -> dict:
    """``keys`` creators at once (one token and host each, a credentials file), ``rows`` course rows each.

    Per key: req/s from the sandbox's arrival times (wall clock; "requests / seconds" is the same from this
    process's monotonic clock, enqueue to last row final, as a cross-check), as % of the sandbox's limit; 429s;
    the workers' CPU time per request the sandbox received; Redis commands per row (enqueue, then everything until the
    last row is final: broker traffic, the limiter, bookkeeping, the workers' idle polling). Workers are started
    as ``start_key_workers`` says (``cli=True``: ``python -m importer worker`` with its defaults, its environment
    only TAGMANGO_REDIS_URL, TAGMANGO_CREDENTIALS_FILE and TAGMANGO_API_URL).
    """
    from tests.bench.cli import cli_env, load, wait_workers_ready
    from tests.bench.scale import reference_loop

    load0, speed = load(), reference_loop()
    tokens = {f"bench-token-{k:02d}-0123456789": f"k{k}.example.com" for k in range(keys)}
    sandbox = serve_in_thread(SandboxConfig(tokens=dict(tokens), latency_s=(0.05, 0.4), seed=1, rate_limit=limit,
                                            count_after_latency=count_after_latency))
    procs: list = []
    spy = None
    try:
        redis.client().flushall()
        creds = work / "creds.yaml"
        creds.write_text("".join(f"{h}: {t}\n" for t, h in tokens.items()))
        if cli:
            env = cli_env(TAGMANGO_REDIS_URL=redis.url, TAGMANGO_CREDENTIALS_FILE=str(creds),
                          TAGMANGO_API_URL=sandbox.url, **worker_settings)
        else:
            env = worker_env(redis.url, sandbox.url, "unused", TAGMANGO_CREDENTIALS_FILE=str(creds), **worker_settings)
        procs = start_key_workers(work, env, workers, cli=cli, pool=pool, concurrency=concurrency, loglevel=loglevel)
        ready_s = wait_workers_ready(redis.url, procs)
        store = RowStore.from_url(redis.url)
        plans = [build_plan([courses_csv(work / f"k{k}.csv", rows, f"K{k}x")]) for k in range(keys)]
        if profile is not None:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                    str(procs[0].proc.pid), "--format", "raw", "--rate", "200", "--gil", "--output",
                                    str(profile), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(1)  # start-up settling: py-spy attaches
        calls0, scripts0 = redis_calls(redis)
        cpu0 = worker_cpu(procs)
        start, wall0 = time.monotonic(), time.time()
        jobs = [enqueue(store, plan, sandbox.url, host) for plan, host in zip(plans, tokens.values(), strict=True)]
        calls1, _ = redis_calls(redis)
        wait_until(lambda: all(store.is_final(j) for j in jobs), 3600, 1.0, "every row final")
        seconds, wall1 = time.monotonic() - start, time.time()
        cpu = worker_cpu(procs) - cpu0
        calls2, scripts2 = redis_calls(redis)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        stats = sandbox.stats()
        per_token = httpx.get(sandbox.url + "/_sandbox/arrivals").json()
        succeeded = sum(store.counts(j).get("succeeded", 0) for j in jobs)
    finally:
        if spy is not None and spy.poll() is None:
            os.killpg(spy.pid, signal.SIGKILL)
        for p in procs:
            p.stop()
        sandbox.stop()
    per_key = sorted(window_stats(ts)[0] for ts in per_token.values())
    first, last = min(ts[0] for ts in per_token.values()), max(ts[-1] for ts in per_token.values())
    total_rate = sum(len(ts) for ts in per_token.values()) / max(last - first, 1e-9)
    allowed = limit / 10.0
    peaks = sorted(stats["max_in_window_by_token"].values())
    problems = log_problems(procs)
    how = ("tagmango-import worker" + (f" --concurrency {concurrency}" if concurrency else "") if cli else
           f"celery --pool {pool} -c {concurrency or 8}" if pool else f"tests Worker, threads x {concurrency or 8}")
    return {"scenario": label, "workers": f"{workers} x {how}", "keys x rows": f"{keys} x {rows}",
            "seconds": round(seconds, 1), "total req/s": round(total_rate, 2),
            "% of keys x limit": round(100 * total_rate / (keys * allowed), 1),
            "requests / seconds": round(stats["requests"] / seconds, 2),
            "per key req/s (min-max)": f"{per_key[0]:.2f}-{per_key[-1]:.2f}",
            "per key % of limit (min-max)": f"{100 * per_key[0] / allowed:.0f}-{100 * per_key[-1] / allowed:.0f}",
            "429s": stats["rate_limited"], "max in 10 s per key (min-max)": f"{peaks[0]}-{peaks[-1]}",
            "requests": stats["requests"], "ms CPU/request": round(1000 * cpu / max(stats["requests"], 1), 1),
            "Redis cmds/row (enqueue + run)": f"{(calls1 - calls0) / (keys * rows):.0f} + "
                                              f"{(calls2 - calls1) / (keys * rows):.0f}",
            "scripts/row": round((scripts2 - scripts0) / (keys * rows), 1),
            "succeeded": f"{succeeded}/{keys * rows}", "workers ready s": round(ready_s, 1),
            "arrivals from-to s": f"{first - wall0:.1f}-{last - wall0:.1f} (final {wall1 - wall0:.1f})",
            "worker log problems": len(problems), "_problems": problems, "reference loop s": speed,
            "load before": load0, "load after": load()}


def profile_summary(path: Path, top: int = 25) -> None:
    """Print where a py-spy raw (collapsed stacks) profile spends its samples: by own frame and by function."""
    from collections import Counter

    own, inclusive, total = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n, frames = int(n), stack.split(";")
        total += n
        idle = any(f.startswith(("wait (threading.py", "select (selectors", "_wait_for_tstate_lock", "sleep",
                                 "poll (selectors")) for f in frames[-2:])
        if idle:
            own["<idle: waiting/sleeping>"] += n
            continue
        own[frames[-1].split(" (")[0] + " (" + frames[-1].split(" (")[-1]] += n
        for f in set(frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0] for frame in frames):
            inclusive[f] += n
    print(f"\n{total} samples; busiest own frames:")
    for f, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {f}")
    print("busiest functions (inclusive):")
    for f, n in inclusive.most_common(top * 2):
        print(f"  {100 * n / total:5.1f}%  {f}")


def bench_enqueue(work: Path, redis: RedisServer, rows: int) -> list[dict]:
    """Rows per second into Redis: our enqueue (records + messages) vs a bare apply_async loop."""
    redis.client().flushall()
    plan = build_plan([courses_csv(work / "enq.csv", rows, "E")])
    store = RowStore.from_url(redis.url)
    t0 = time.perf_counter()
    enqueue(store, plan, "http://127.0.0.1:9", HOST)
    ours = time.perf_counter() - t0
    redis.client().flushall()
    from tasks.celery_app import app

    t0 = time.perf_counter()
    with app.connection_for_write(redis.url) as conn, conn.Producer() as producer:
        for i in range(rows):
            app.send_task("tagmango.create_course", args=("job", f"s:{i}", f"t{i}"), producer=producer,
                          ignore_result=True)
    bare = time.perf_counter() - t0
    return [{"what": f"enqueue {rows} rows (job + row records + messages)", "seconds": round(ours, 2),
             "rows/s": round(rows / ours)},
            {"what": f"plain apply_async loop, {rows} messages", "seconds": round(bare, 2),
             "rows/s": round(rows / bare)}]


def bench_footprint(work: Path, redis: RedisServer, rows: int) -> list[dict]:
    """Worker RSS while 5,000 rows go through (limit raised: this measures memory, not the API), Redis per row."""
    import psutil

    sandbox = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, rate_limit=100_000, seed=1))
    client = redis.client()
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    env = worker_env(redis.url, sandbox.url, TOKEN, TAGMANGO_RATE_LIMIT="50000")
    worker = Worker(env, work / "fp.log", "footprint").start()
    time.sleep(3)
    store = RowStore.from_url(redis.url)
    job = enqueue(store, build_plan([courses_csv(work / "fp.csv", rows, "F")]), sandbox.url, HOST)
    samples = []
    proc = psutil.Process(worker.proc.pid)
    while not store.is_final(job):
        samples.append((store.counts(job).get("succeeded", 0), proc.memory_info().rss / 2**20))
        time.sleep(1)
    samples.append((rows, proc.memory_info().rss / 2**20))
    after = int(client.info("memory")["used_memory"])
    worker.stop()
    sandbox.stop()
    quarter = [m for done, m in samples if done <= rows // 4] or [samples[0][1]]
    return [{"what": f"worker RSS, {rows} rows", "first quarter MiB": round(max(quarter), 1),
             "end MiB": round(samples[-1][1], 1), "max MiB": round(max(m for _, m in samples), 1)},
            {"what": "Redis memory per row (records, ledger, indexes)", "first quarter MiB": None,
             "end MiB": round((after - before) / 2**20, 1), "max MiB": f"{(after - before) / rows:.0f} bytes/row"}]


def show(rows: list[dict]) -> None:
    """Print rows as a table (keys starting with ``_`` left out; ``_problems``: the workers' log lines, below it)."""
    frame = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    print(frame.to_markdown(index=False) if _has_tabulate() else frame.to_string(index=False), flush=True)
    for r in rows:
        for line in r.get("_problems") or []:
            print(f"  worker log ({r.get('scenario')}, {r.get('workers')}): {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--only", default="quota,scale,two-hosts,ingest,enqueue,footprint")
    parser.add_argument("--ingest-rows", type=int, default=100_000)
    parser.add_argument("--footprint-rows", type=int, default=5000)
    parser.add_argument("--key-rows", type=int, default=300, help="rows per key in key1/keys4/keys8/limit60")
    parser.add_argument("--count-after-latency", action="store_true",
                        help="the sandbox counts a request when it answers it, not when it arrives")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per worker in key1/keys4/keys8/limit60 (default 8, or the CLI's default)")
    parser.add_argument("--loglevel", default=None, help="workers' log level in key1/keys4/keys8/limit60 "
                                                         "(default WARNING, what tagmango-import starts)")
    parser.add_argument("--cli-workers", action="store_true",
                        help="key1/keys4/keys8/limit60/profile: start workers with `python -m importer worker`")
    parser.add_argument("--nowait-rows", type=int, default=100_000, help="rows in nowait")
    parser.add_argument("--nowait-quoted", action="store_true",
                        help="nowait's file has a quoted cell in every tenth row (the csv module reads it)")
    parser.add_argument("--nowait-timeout", type=float, default=600, help="seconds before nowait's command is cut off")
    parser.add_argument("--validate-rows", type=int, default=100_000, help="rows in validate")
    parser.add_argument("--match-courses", type=int, default=10_000, help="live courses and rows in matchbig")
    parser.add_argument("--match-mode", default="merge", help="matchbig's --mode (create: no read-backs)")
    parser.add_argument("--course-trees", type=Path, default=None,
                        help="folder of the real course trees (default ../shared/data/course_trees)")
    parser.add_argument("--pools", default=None, help="pools: POOL:N,... (default threads:8,16,32 and gevent:64,200)")
    parser.add_argument("--pool-rows", type=int, default=120, help="rows per key in pools (16 keys)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(f"# tagmango-importer benchmarks, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis = RedisServer(work / "redis").start()
        try:
            if "quota" in only:
                show([bench_ours(work, redis, args.rows, 2), bench_sequential(args.rows),
                      bench_textbook(work, redis, args.rows)])
            if "ours" in only:
                show([bench_ours(work, redis, args.rows, 2)])
            if "scale" in only:
                show([bench_ours(work, redis, args.rows, 4)])
            if "two-hosts" in only:
                show([bench_two_hosts(work, redis, args.rows // 2)])
            if "ingest" in only:
                show(bench_ingest(work, args.ingest_rows))
            if "enqueue" in only:
                show(bench_enqueue(work, redis, args.ingest_rows))
            cal = {"count_after_latency": args.count_after_latency, "concurrency": args.threads,
                   "loglevel": args.loglevel, "cli": args.cli_workers}
            keyed = [(name, n, lim) for name, n, lim in (("key1", 1, 120), ("keys4", 4, 120), ("keys8", 8, 120),
                                                           ("limit60", 1, 60)) if name in only]
            for name, n, lim in keyed:
                show([bench_keys(work, redis, n, args.key_rows, label=name, limit=lim, **cal)])
            if "profile" in only:
                out = Path(os.environ.get("BENCH_PROFILE", "profile.txt")).resolve()
                show([bench_keys(work, redis, 4, args.key_rows, label="keys4 (py-spy on worker 0)", profile=out,
                                 **cal)])
                profile_summary(out)
            if "footprint" in only:
                show(bench_footprint(work, redis, args.footprint_rows))
            if "tree" in only:
                from tests.bench.tree import bench_tree

                show([bench_tree(work, redis)])
            if only & {"keys16", "pools", "profile16", "rowcpu", "sweep"}:
                from tests.bench import scale

                if "rowcpu" in only:
                    show([scale.bench_rowcpu(work, redis)])
                if "sweep" in only:
                    show([scale.bench_sweep(work, redis, args.nowait_rows)])

                if "keys16" in only:
                    show([scale.bench_keys16(work, redis)])
                if "pools" in only:
                    show(scale.bench_pools(work, redis, args.pools or scale.DEFAULT_POOLS, rows=args.pool_rows))
                if "profile16" in only:
                    row, out = scale.bench_profile16(work, redis)
                    show([row])
                    profile_summary(out, 15)
            if "export" in only:
                from tests.bench.export import bench_export

                show([bench_export(work, redis, trees_folder=args.course_trees)])
            if only & {"nowait", "validate", "match6", "match6-60", "twomachines", "matchbig", "resume"}:
                from tests.bench import cli

                if "nowait" in only:
                    show([cli.bench_nowait(work, redis, args.nowait_rows, args.nowait_timeout, args.nowait_quoted)])
                if "validate" in only:
                    show(cli.bench_validate_cli(work, args.validate_rows))
                if "match6" in only:
                    show([cli.bench_match6(work, redis, trees=args.course_trees)])
                if "match6-60" in only:
                    show([cli.bench_match6(work, redis, limit=60, trees=args.course_trees)])
                if "twomachines" in only:
                    show([cli.bench_two_machines(work, redis)])
                if "resume" in only:
                    show([cli.bench_resume(work, redis, args.nowait_rows)])
                if "matchbig" in only:
                    show([cli.bench_match_big(work, redis, args.match_courses, args.match_mode)])
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
