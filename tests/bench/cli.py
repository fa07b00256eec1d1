"""Benchmarks of the product as a user runs it: the ``tagmango-import`` commands (``python -m importer ...``) as
subprocesses of their own, and workers started with ``tagmango-import worker`` and its defaults.

Helpers (used by ``tests/bench/run.py`` and ``tests/bench/scale.py``):

* ``Proc``: a command in its own process group, its output in a log file; ``stop()`` ends the whole group.
* ``cli_worker`` / ``celery_worker``: ``python -m importer worker`` (the product's way), or ``python -m celery -A
  tasks worker`` with an explicit pool (for the pool comparison).
* ``wait_workers_ready``: waits (with a deadline) until every worker process has sent a Celery event (online or
  heartbeat) and a dispatcher holds its lock: a state, not a fixed sleep.
* ``run_command``: runs one command, with its wall time, exit code and peak RSS (``wait4``'s ``ru_maxrss``, and
  psutil polled every 50 ms as a cross-check that also gives the RSS when a command is cut off).

Scenarios (each returns table rows; every one records the load average before and after):

* ``bench_nowait``: ``run FILE --no-wait`` of a big courses CSV (no workers): wall time, peak RSS, Redis bytes/row.
* ``bench_validate_cli``: ``validate FILE`` (CSV and xlsx) vs a bare ``pandas`` read, each a fresh process.
* ``bench_match6``: the six real course trees imported with ``run`` and a CLI worker, Redis flushed, then a
  ``validate --mode merge`` dry run timed against its bound (``limit60``: TagMango allows 60 per 10 s).
* ``bench_two_machines``: one file ``run`` at the same moment from two folders with two Redis servers.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import redis as redis_lib

from importer.sandbox import SandboxConfig, serve_in_thread
from tests.services import RedisServer

TOKEN, HOST, MANGO = "bench-token-0123456789", "bench.example.com", "66c4964c11e7fef26751f3a7"
COURSE_TREES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "course_trees"
CHAPTER_DESCRIPTION = "See the lesson video."


def load() -> str:
    """The load average (1, 5, 15 min), as ``uptime`` prints it."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def log_dir(work: Path) -> Path:
    """Where workers' and commands' logs go: ``BENCH_LOG_DIR`` (kept after the run) or the temporary work dir."""
    path = Path(os.environ.get("BENCH_LOG_DIR") or work)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cli_env(**variables: str) -> dict[str, str]:
    """This environment without any TAGMANGO_* / REDIS_URL, plus ``variables``: what a user would export."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGMANGO_") and k != "REDIS_URL"}
    env.update(PYTHONUNBUFFERED="1", **variables)
    return env


class Proc:
    """A long-running command in its own process group (session), stdout and stderr in one log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None) -> None:
        self.argv, self.env, self.log_path, self.cwd = argv, env, log_path, cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the process group (a warm shutdown), SIGKILL to the group if it is not gone in ``timeout``."""
        if self.proc is not None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 15)):
                if self.proc.poll() is not None:
                    break
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
            try:  # anything the group left behind (children of a worker)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if hasattr(self, "log_file"):
            self.log_file.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def cli_worker(env: dict[str, str], log_path: Path, *options: str) -> Proc:
    """``tagmango-import worker`` (it execs ``celery -A tasks worker --pool threads --concurrency N -Q tagmango -E
    --loglevel WARNING``, N from TAGMANGO_WORKER_CONCURRENCY or its default, so the pid is the worker's)."""
    return Proc([sys.executable, "-m", "importer", "worker", *options], env, log_path).start()


def celery_worker(env: dict[str, str], log_path: Path, pool: str, concurrency: int) -> Proc:
    """A worker started directly with an explicit pool, as in the pool comparison."""
    return Proc([sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", "tagmango", "-E", "--loglevel",
                 "WARNING", "--without-gossip", "--without-mingle", "--pool", pool, "--concurrency", str(concurrency)],
                env, log_path).start()


def _event(message: dict) -> dict | None:
    """A Celery event from a kombu message published on Redis (pub/sub fanout), or None."""
    try:
        envelope = json.loads(message["data"])
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        event = json.loads(body)
    except (ValueError, KeyError, TypeError):
        return None
    return event if isinstance(event, dict) else None


def wait_workers_ready(redis_url: str, procs: list, timeout: float = 90) -> float:
    """Wait until each worker process has sent a worker event (worker-online, or a heartbeat every 2 s) and a
    dispatcher holds its lock (both start with the worker). Returns the seconds it took."""
    start = time.monotonic()
    pids = {p.proc.pid for p in procs}
    client = redis_lib.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("*celeryev*")
    seen: set[int] = set()
    try:
        deadline = start + timeout
        while not (pids <= seen and client.exists("tm:dispatch:lock")):
            for p in procs:
                if p.proc.poll() is not None:
                    raise RuntimeError(f"worker {p.proc.pid} exited with {p.proc.returncode}:\n{p.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready after {timeout} s (events from {sorted(seen)} of "
                                   f"{sorted(pids)})")
            message = pubsub.get_message(timeout=0.5)
            event = _event(message) if message else None
            if event and str(event.get("type", "")).startswith("worker-") and event.get("pid") in pids:
                seen.add(event["pid"])
    finally:
        pubsub.close()
        client.close()
    return time.monotonic() - start


def run_command(argv: list[str], env: dict[str, str], cwd: Path, name: str, timeout: float = 600,
                poll_s: float = 0.05) -> dict:
    """Run one command to its end (or ``timeout``): exit code, wall seconds, peak RSS in MiB (``ru_maxrss`` of the
    process from ``wait4``, and the most RSS of it and its children seen by polling every ``poll_s``), its output."""
    cwd.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir(cwd) / f"{name}.stdout", log_dir(cwd) / f"{name}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        ps = psutil.Process(proc.pid)
        peak = rss = 0
        rc, maxrss_kb, timed_out = None, 0, False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    rc, maxrss_kb = os.waitstatus_to_exitcode(status), usage.ru_maxrss
                    proc.returncode = rc
                    break
                try:
                    rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
                    peak = max(peak, rss)
                except psutil.Error:
                    pass
                if time.monotonic() - start > timeout:
                    timed_out = True
                    os.killpg(proc.pid, signal.SIGKILL)
                    _, status, usage = os.wait4(proc.pid, 0)
                    rc, maxrss_kb = os.waitstatus_to_exitcode(status), usage.ru_maxrss
                    proc.returncode = rc
                    break
                time.sleep(poll_s)
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything the command left in its group
            except ProcessLookupError:
                pass
        seconds = time.monotonic() - start
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    return {"rc": rc, "seconds": seconds, "maxrss_mib": maxrss_kb / 1024, "polled_peak_mib": peak / 2**20,
            "last_rss_mib": rss / 2**20, "timed_out": timed_out, "stdout": stdout, "stderr": stderr}


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def importer_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "importer", *args]


# -- nowait ----------------------------------------------------------------------------------------------------


def bench_nowait(work: Path, redis: RedisServer, rows: int, timeout: float = 600, quoted: bool = False) -> dict:
    """``tagmango-import run FILE --no-wait --host H`` of ``rows`` course rows with a configured Redis, no workers."""
    from tasks.rowstore import RowStore
    from tests.bench.run import courses_csv

    load0 = load()
    folder = work / f"nowait{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    csv = courses_csv(folder / f"courses{rows}.csv", rows, "N", description=True, quoted=quoted)
    sandbox = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, latency_s=(0.05, 0.4), seed=1))
    try:
        client = redis.client()
        client.flushall()
        before = int(client.info("memory")["used_memory"])
        env = cli_env(TAGMANGO_REDIS_URL=redis.url, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN)
        done = run_command(importer_cmd("run", csv.name, "--no-wait", "--host", HOST), env, folder,
                           f"nowait{rows}", timeout=timeout)
        after = int(client.info("memory")["used_memory"])
        store = RowStore.from_url(redis.url)
        job = store.latest_job()
        queued = store.job(job).total if job and store.job(job) else None
        requests = sandbox.stats()["requests"]
    finally:
        sandbox.stop()
    return {"scenario": "nowait (quoted cells)" if quoted else "nowait", "rows": rows, "exit": done["rc"],
            "seconds": round(done["seconds"], 1),
            "peak RSS MiB (wait4)": round(done["maxrss_mib"]), "peak RSS MiB (polled)": round(done["polled_peak_mib"]),
            "Redis bytes/row": round((after - before) / rows), "Redis MiB": round((after - before) / 2**20),
            "job rows in Redis": queued, "API requests": requests,
            "timed out": done["timed_out"], "stderr (last line)": last_line(done["stderr"])[:160],
            "load before": load0, "load after": load()}


# -- validate --------------------------------------------------------------------------------------------------


BARE = {".csv": "import pandas, sys; pandas.read_csv(sys.argv[1])",
        ".xlsx": "import pandas, sys; pandas.read_excel(sys.argv[1], engine='calamine')"}


def bench_validate_cli(work: Path, rows: int, repeats: int = 3) -> list[dict]:
    """``tagmango-import validate FILE`` vs a process that only reads the file with pandas; min of ``repeats``."""
    import pandas as pd

    from tests.bench.run import courses_csv

    folder = work / f"validate{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    csv = courses_csv(folder / f"courses{rows}.csv", rows, "V", description=True)
    xlsx = folder / f"courses{rows}.xlsx"
    pd.read_csv(csv, dtype=str).to_excel(xlsx, index=False, engine="openpyxl")
    env = cli_env()
    out = []
    for path in (csv, xlsx):
        load0 = load()
        ours, bare, rcs, rss = [], [], set(), []
        for i in range(repeats):  # alternate, so a burst of load from elsewhere hits both alike
            done = run_command(importer_cmd("validate", path.name), env, folder, f"validate{path.suffix}{i}")
            ours.append(done["seconds"])
            rcs.add(done["rc"])
            rss.append(done["maxrss_mib"])
            done = run_command([sys.executable, "-c", BARE[path.suffix], path.name], env, folder,
                               f"bare{path.suffix}{i}")
            assert done["rc"] == 0, done["stderr"]
            bare.append(done["seconds"])
        out.append({"scenario": "validate", "file": f"{rows} rows {path.suffix}", "validate s (min of 3)":
                    round(min(ours), 2), "bare pandas s (min of 3)": round(min(bare), 2),
                    "ratio": round(min(ours) / min(bare), 1), "validate exit": ",".join(map(str, sorted(rcs))),
                    "validate peak RSS MiB": round(max(rss)), "all validate s": " ".join(f"{s:.2f}" for s in ours),
                    "all bare s": " ".join(f"{s:.2f}" for s in bare), "load before": load0, "load after": load()})
    return out


# -- match6 ----------------------------------------------------------------------------------------------------


def course_tree_files(folder: Path | None = None) -> list[Path]:
    files = sorted((folder or COURSE_TREES).glob("*.csv"))
    if not files:
        raise SystemExit(f"no course trees in {folder or COURSE_TREES} (see its README.md)")
    return files


def bench_match6(work: Path, redis: RedisServer, *, limit: int = 120, trees: Path | None = None) -> dict:
    """Import the six real courses with ``run`` (a configured Redis, one ``tagmango-import worker``), flush Redis
    (another machine), then time ``validate --mode merge`` against the same sandbox (limit 60: set just before)."""
    files = [str(f) for f in course_tree_files(trees)]
    sets = ["--set", f"mangoes={MANGO}", "--set", f"chapter_description={CHAPTER_DESCRIPTION}"]
    folder = work / f"match6-{limit}"
    folder.mkdir(parents=True, exist_ok=True)
    load0 = load()
    sandbox = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, latency_s=(0.02, 0.08), seed=1, rate_limit=120))
    worker = None
    try:
        redis.client().flushall()
        env = cli_env(TAGMANGO_REDIS_URL=redis.url, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN)
        worker = cli_worker(env, log_dir(work) / f"match6-{limit}-worker.log")
        wait_workers_ready(redis.url, [worker])
        # --results: the inputs stay untouched wherever they live (the product would pick the current folder for a
        # read-only one; root may write anywhere).
        imported = run_command(importer_cmd("run", *files, "--host", HOST, *sets, "--results",
                                            str(folder / "import.results.xlsx")), env, folder, f"match6-{limit}-import")
        if imported["rc"] != 0:
            raise RuntimeError(f"the import exited {imported['rc']}: {imported['stderr'][-2000:]}")
        lessons = sum(len(m["chapters"]) for c in sandbox.tree(HOST) for m in c["modules"])
        worker.stop()
        worker = None
        redis.client().flushall()  # an empty Redis: another machine
        if limit != 120:
            sandbox.configure(rate_limit=limit)
        before = sandbox.stats()
        load1 = load()
        started = time.time()  # the sandbox stamps arrivals with the wall clock
        dry = run_command(importer_cmd("validate", *files, "--mode", "merge", "--host", HOST, *sets), env, folder,
                          f"match6-{limit}-dryrun")
        after = sandbox.stats()
        arrivals = sorted(t for ts in httpx.get(sandbox.url + "/_sandbox/arrivals").json().values() for t in ts
                          if t >= started)
    finally:
        if worker is not None:
            worker.stop()
        sandbox.stop()
    requests = after["requests"] - before["requests"]
    rate429 = after["rate_limited"] - before["rate_limited"]
    bound = 1.25 * requests / 12 + 4 if limit == 120 else 1.3 * requests / (limit / 10) + 6
    from tests.bench.run import window_stats

    peak = window_stats(arrivals)[1] if arrivals else 0
    gap = max((b - a for a, b in zip(arrivals, arrivals[1:], strict=False)), default=0.0)
    return {"scenario": "match6" if limit == 120 else f"match6-{limit}",
            "import": f"exit {imported['rc']}, {imported['seconds']:.1f} s, {lessons} lessons",
            "dry run exit": dry["rc"], "elapsed s": round(dry["seconds"], 1), "requests": requests, "429s": rate429,
            "bound s": round(bound, 1), "within bound": dry["rc"] == 0 and dry["seconds"] <= bound,
            "most in 10 s": peak, "longest pause s": round(gap, 1),
            "stderr (last line)": last_line(dry["stderr"])[:200], "stdout (last line)": last_line(dry["stdout"])[:120],
            "load before import": load0, "load before dry run": load1, "load after": load()}


# -- resume ----------------------------------------------------------------------------------------------------


def bench_resume(work: Path, redis: RedisServer, rows: int = 100_000) -> dict:
    """``tasks.recovery.resume`` of a queued job of ``rows`` course rows (every worker gone), in a process of its
    own (wall time, peak RSS); the job is enqueued by another process before."""
    folder = work / f"resume{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    redis.client().flushall()
    load0 = load()
    env = cli_env(TAGMANGO_REDIS_URL=redis.url)
    enqueued = run_command([sys.executable, "-c", f"""
from pathlib import Path
from importer.ingest.validate import build_plan
from tasks.enqueue import enqueue
from tasks.rowstore import RowStore
from tests.bench.run import courses_csv
plan = build_plan([courses_csv(Path({str(folder)!r}) / "c.csv", {rows}, "R", description=True)])
enqueue(RowStore.from_url({redis.url!r}), plan, "http://127.0.0.1:9", {HOST!r})
"""], {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}, folder, "resume-enqueue", timeout=600)
    if enqueued["rc"] != 0:
        raise RuntimeError(f"enqueueing failed: {enqueued['stderr'][-2000:]}")
    done = run_command([sys.executable, "-c", f"""
from tasks.recovery import resume
from tasks.rowstore import RowStore
store = RowStore.from_url({redis.url!r})
print(resume(store, store.latest_job()))
"""], env, folder, "resume", timeout=600)
    return {"scenario": "resume", "rows": rows, "exit": done["rc"], "resumed": last_line(done["stdout"]),
            "seconds": round(done["seconds"], 1), "peak RSS MiB": round(done["maxrss_mib"]),
            "stderr (last line)": last_line(done["stderr"])[:160], "load before": load0, "load after": load()}


# -- matchbig --------------------------------------------------------------------------------------------------


def bench_match_big(work: Path, redis: RedisServer, courses: int = 10_000, mode: str = "merge") -> dict:
    """A creator with ``courses`` live courses and a file of the same ``courses`` titles (no course_id, an empty
    Redis: no ledger), ``validate --mode MODE``: every row is matched by its title. The sandbox and the importer
    allow a million requests per 10 s, so the time is the importer's own (matching, reads), not the budget."""
    from concurrent.futures import ThreadPoolExecutor

    from tasks.client import TagMangoClient
    from tests.bench.run import courses_csv

    folder = work / "matchbig"
    folder.mkdir(parents=True, exist_ok=True)
    csv = courses_csv(folder / f"match{courses}.csv", courses, "M", description=True)
    load0 = load()
    sandbox = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, seed=1, rate_limit=1_000_000))
    try:
        redis.client().flushall()
        api = TagMangoClient(sandbox.url, TOKEN, HOST)
        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: api.create_course({"title": f"Bench M{i}", "mangoes": [MANGO],
                                                           "description": f"About course M{i}"}), range(courses)))
        finally:
            api.close()
        env = cli_env(TAGMANGO_REDIS_URL=redis.url, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN,
                      TAGMANGO_RATE_LIMIT="1000000")
        before = sandbox.stats()
        load1 = load()
        dry = run_command(importer_cmd("validate", str(csv), "--mode", mode, "--host", HOST), env, folder,
                          f"matchbig-{mode}", timeout=1800)
        after = sandbox.stats()
    finally:
        sandbox.stop()
    return {"scenario": f"matchbig ({mode})", "live courses": courses, "rows": courses, "exit": dry["rc"],
            "seconds": round(dry["seconds"], 1), "peak RSS MiB": round(dry["maxrss_mib"]),
            "requests": after["requests"] - before["requests"], "stdout (last line)": last_line(dry["stdout"])[:160],
            "stderr (last line)": last_line(dry["stderr"])[:160], "load before seeding": load0,
            "load before": load1, "load after": load()}


# -- two machines ----------------------------------------------------------------------------------------------


def bench_two_machines(work: Path, redis: RedisServer, rows: int = 60) -> dict:
    """The same file run at the same moment from two folders, each with its own Redis and worker (two machines),
    same token and host, one sandbox."""
    from tests.bench.run import courses_csv

    load0 = load()
    sandbox = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, latency_s=(0.05, 0.4), seed=1))
    second = RedisServer(work / "redis-second").start()
    workers: list[Proc] = []
    try:
        redis.client().flushall()
        second.client().flushall()
        envs, folders = [], []
        for name, server in (("a", redis), ("b", second)):
            folder = work / f"machine-{name}"
            folder.mkdir(parents=True, exist_ok=True)
            courses_csv(folder / "courses.csv", rows, "M")  # the same file on both machines
            env = cli_env(TAGMANGO_REDIS_URL=server.url, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN)
            workers.append(cli_worker(env, log_dir(work) / f"machine-{name}-worker.log"))
            envs.append(env)
            folders.append(folder)
        wait_workers_ready(redis.url, workers[:1])
        wait_workers_ready(second.url, workers[1:])
        import threading

        results: dict[str, dict] = {}

        def go(name: str, env: dict, folder: Path) -> None:
            results[name] = run_command(importer_cmd("run", "courses.csv", "--host", HOST), env, folder,
                                        f"machine-{name}-run")

        threads = [threading.Thread(target=go, args=(n, e, f)) for n, e, f in zip("ab", envs, folders, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = sandbox.stats()
    finally:
        for w in workers:
            w.stop()
        second.stop()
        sandbox.stop()
    dupes = stats["duplicate_titles"].get(HOST, {})
    said = []
    for name in "ab":
        text = results[name]["stdout"] + results[name]["stderr"]
        hits = [line.strip() for line in text.splitlines() if "duplicat" in line.lower()]
        said.append(f"{name}: {hits[0][:100] if hits else 'nothing'}")
    return {"scenario": "twomachines", "rows": rows, "exit codes": f"{results['a']['rc']}, {results['b']['rc']}",
            "seconds": f"{results['a']['seconds']:.1f}, {results['b']['seconds']:.1f}",
            "courses for host": stats["courses_by_host"].get(HOST, 0), "duplicated titles": len(dupes),
            "extra copies": sum(n - 1 for n in dupes.values()), "429s": stats["rate_limited"],
            "output mentions duplicates": "; ".join(said), "load before": load0, "load after": load()}
