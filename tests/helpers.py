"""Helpers shared by the tests: constants, catalog files, waiting for a job, and its consistency check.

Test modules import from here (and from tests/services.py for the servers), never from each other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from importer.ingest.validate import Options, build_plan
from tasks.dispatch import LOCK as DISPATCH_LOCK
from tasks.park import park_later
from tasks.rows import ACTIVE, STATES, Row, RowState
from tasks.rowstore import RowStore
from tasks.runner import Later, Message, run_row
from tests.services import wait_until

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"
SHARED = ROOT.parent / "shared" / "data"
TOKEN = "test-token-s3cr3t-0123456789abcdef"
HOST = "academy.example.com"
MANGO = "66c4964c11e7fef26751f3a7"


def write_catalog(path: Path, courses: int, chapters_per_course: int = 0, prefix: str = "C") -> list[Path]:
    """A courses CSV (and a chapters CSV patching each course's first/second chapter) next to ``path``."""
    lines = ["external_id,title,mangoes,description"]
    lines += [f"{prefix}{i:04d},Course {prefix}{i:04d},{MANGO},About {i}" for i in range(courses)]
    path.with_suffix(".courses.csv").write_text("\n".join(lines) + "\n")
    files = [path.with_suffix(".courses.csv")]
    if chapters_per_course:
        slots = ["first", "second"][:chapters_per_course]
        rows = ["course_ref,chapter_slot,title,content,content_type"]
        rows += [f"{prefix}{i:04d},{s},Lesson {i} {s},https://cdn.tagmango.com/v/{i}-{s}.mp4,video"
                 for i in range(courses) for s in slots]
        path.with_suffix(".chapters.csv").write_text("\n".join(rows) + "\n")
        files.append(path.with_suffix(".chapters.csv"))
    return files


def write_tree(path: Path, *lessons: int, course: str = "K1") -> Path:
    """A curriculum CSV: one course with a module per number, holding that many lessons (0: an empty module)."""
    lines = ["course_ref,course_title,mangoes,module_title,chapter_title,chapter_description"]
    for m, count in enumerate(lessons, start=1):
        lines += [f"{course},Course {course},{MANGO},Module {m},Lesson {m}.{c},About {m}.{c}" for c in
                  range(1, count + 1)] or [f"{course},Course {course},{MANGO},Module {m},,"]
    path.write_text("\n".join(lines) + "\n")
    return path


def settle(store: RowStore, job_id: str, row_id: str, result: dict | None = None) -> Row:
    """Run a row to ``succeeded`` with ``result`` in the store, as a worker would (running, then succeeded)."""
    row = store.row(job_id, row_id)
    row.state = RowState.RUNNING
    store.save(job_id, row)
    row.state, row.result = RowState.SUCCEEDED, result or {}
    store.save(job_id, row)
    return row


def plan_of(*files: Path, options: Options | None = None):
    plan = build_plan(list(files), options or Options())
    assert plan.ok, plan.errors[:5]
    return plan


def wait_final(store: RowStore, job_id: str, timeout: float = 120) -> dict:
    wait_until(lambda: store.is_final(job_id), timeout, 0.3, f"job {job_id} to finish: {store.counts(job_id)}")
    return store.counts(job_id)


def assert_consistent(store: RowStore, job_id: str, final: bool = True) -> Counter:
    """Counters equal the row states, the total is the job's row count, and (``final``) every row is final."""
    states = Counter(store.states(job_id).values())
    counts = store.counts(job_id)
    assert {s: counts.get(s.value, 0) for s in STATES} == {s: states.get(s.value, 0) for s in STATES}
    assert sum(states.values()) == store.job(job_id).total
    assert not final or not any(states[s.value] for s in ACTIVE)
    return states


# -- running a job in the test process ---------------------------------------------------------------


def run_in_process(services, job_id: str, timeout: float = 120.0) -> dict:
    """Run a job's rows in this process until it is final, like rq's burst worker: the dispatcher hands out
    parked rows at their rate-limit slots (tasks.dispatch) and each is run here; a row the runner re-schedules
    (``Later``) is parked again through ``park_later``, as the Celery task does. Returns the job's counts."""
    store = services.store
    dispatcher = services.dispatcher()
    assert dispatcher.take_lock(), "another dispatcher holds the lock"
    due: list[tuple] = []
    deadline = time.monotonic() + timeout
    try:
        while not store.is_final(job_id):
            assert time.monotonic() < deadline, f"job {job_id} not final after {timeout}s: {store.counts(job_id)}"
            if not due:
                wait = dispatcher.tick(due.extend)
                if not due:
                    time.sleep(min(wait or 0.01, 0.05))
                    continue
            row = due.pop(0)
            if row.job_id != job_id:
                continue
            outcome = run_row(services, Message(row.job_id, row.row_id, row.gen, row.slot))
            if isinstance(outcome, Later):
                park_later(store, job_id, (row.op, row.row_id, row.title), outcome.countdown)
    finally:
        if store.r.get(DISPATCH_LOCK) == dispatcher.owner:
            store.r.delete(DISPATCH_LOCK)
    return store.counts(job_id)


# -- the command line, as a user runs it ------------------------------------------------------------


def env_for(tmp_path: Path, **extra: str) -> dict:
    """The environment of a CLI subprocess: no inherited TagMango settings, state under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGMANGO_") and k != "REDIS_URL"}
    env.update(TAGMANGO_STATE_DIR=str(tmp_path / "state"), TAGMANGO_BACKOFF_BASE="0.5", TAGMANGO_BACKOFF_MAX="5",
               PYTHONUNBUFFERED="1", **extra)
    return env


def cli(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "importer", *args], capture_output=True, text=True,
                          cwd=tmp_path, env=env or env_for(tmp_path), timeout=timeout)


def embedded_url(tmp_path: Path) -> str | None:
    """The URL (with its password) of the embedded Redis a CLI run in ``tmp_path`` started, if it has one."""
    redis_dir = tmp_path / "state" / "redis"
    try:
        port, password = (redis_dir / "port").read_text().strip(), (redis_dir / "password").read_text().strip()
    except OSError:
        return None
    return f"redis://:{password}@127.0.0.1:{port}/0"


def embedded_store(tmp_path: Path) -> RowStore | None:
    """The row store of the embedded Redis a CLI run in ``tmp_path`` started, once it answers."""
    import redis

    url = embedded_url(tmp_path)
    if url is None:
        return None
    store = RowStore.from_url(url)
    try:
        store.r.ping()
    except redis.RedisError:
        return None
    return store


def stop_kept(tmp_path: Path) -> None:
    """Stop whatever CLI runs in ``tmp_path`` left running (without trusting the command under test to do it): every
    process in the state folder's registry, and pid files of older layouts."""
    from importer.local.state import Registry

    state = tmp_path / "state"
    pids = [entry.pid for entry in Registry(state).entries()]  # alive and the very process registered
    for pid_file in (state / "worker.pid", state / "sandbox" / "pid", state / "flower" / "pid",
                     state / "dashboard" / "pid"):
        try:
            pids.append(int(pid_file.read_text()))
        except (OSError, ValueError):
            pass
    url = embedded_url(tmp_path)
    if url:
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).shutdown(nosave=True)
        except redis.RedisError:
            pass
    for pid in pids:
        if pid == os.getpid():
            continue
        for kill in (os.killpg, os.kill):  # its group when it leads one (the services), else the process
            try:
                kill(pid, signal.SIGKILL)
                break
            except (OSError, ValueError):
                pass
