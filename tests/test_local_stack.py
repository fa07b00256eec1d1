"""The local stack (``.tagmango/``) as users share it: no secret on any command line, private files, a Redis that
wants its password, several commands at once, ``stop`` ending everything, and hints as the user typed them.

Everything here runs the real command line (tests/helpers.py:cli) with real processes; every wait is for a state
(a row count in the job's Redis, a process in the registry, a page answering), never for a time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import redis

from importer.config import invoked_as
from importer.local.state import Registry, running
from tests.helpers import HOST, MANGO, SAMPLES, TOKEN, cli, embedded_store, embedded_url, env_for, stop_kept
from tests.services import free_port, wait_until

#: A token a user exported for their real TagMango: it must never be on a command line, nor reach the sandbox.
REAL_TOKEN = "real-tagmango-token-5f3c9a71e2d84b06"
FLOWER_AUTH = "ops:flower-pw-77c1e0"
DASH_AUTH = "ops:dash-pw-9a2f41"


def _cmdlines() -> dict[int, bytes]:
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                found[int(proc.name)] = (proc / "cmdline").read_bytes()
            except OSError:
                pass
    return found


class CmdlineWatch:
    """Reads every process's command line again and again in a thread, and keeps what held a secret."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s.encode() for s in secrets if s]
        self.leaks: list[tuple[int, str]] = []
        self.seen: set[int] = set()
        self.rounds = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def add(self, secret: str) -> None:
        self.secrets.append(secret.encode())

    def scan(self) -> None:
        for pid, cmdline in _cmdlines().items():
            self.seen.add(pid)
            if any(s in cmdline for s in self.secrets):
                self.leaks.append((pid, cmdline.replace(b"\0", b" ").decode(errors="replace")))
        self.rounds += 1

    def loop(self) -> None:
        while not self.done.is_set():
            self.scan()
            self.done.wait(0.02)

    def __enter__(self) -> CmdlineWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=10)


def _private(state: Path) -> list[str]:
    """What in the state folder group or others may access (nothing, when all is well)."""
    loose = [] if (state.stat().st_mode & 0o777) == 0o700 else [f"{state}: {state.stat().st_mode & 0o777:o}"]
    for path in state.rglob("*"):
        try:
            mode = path.lstat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077 and not path.is_symlink():
            loose.append(f"{path.relative_to(state)}: {mode:o}")
    return loose


def test_no_secret_on_any_command_line_during_a_kept_sandbox_run(kept):
    tmp_path = kept
    state = tmp_path / "state"
    shutil.copy(SAMPLES / "catalog.xlsx", tmp_path / "catalog.xlsx")
    env = env_for(tmp_path, TAGMANGO_API_TOKEN=REAL_TOKEN, TAGMANGO_RATE_LIMIT="60",
                  TAGMANGO_FLOWER_BASIC_AUTH=FLOWER_AUTH, TAGMANGO_DASHBOARD_BASIC_AUTH=DASH_AUTH)
    secrets = [REAL_TOKEN, FLOWER_AUTH.split(":")[1], DASH_AUTH.split(":")[1]]
    dashboard = None
    with CmdlineWatch(secrets) as watch:
        proc = subprocess.Popen([sys.executable, "-m", "importer", "run", "catalog.xlsx", "--sandbox", "--keep-running",
                                 "--flower"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            # While the import runs: rows done in the job's own Redis (which wants the password from the folder).
            store = wait_until(lambda: embedded_store(tmp_path), 60, message="the embedded Redis")
            watch.add(embedded_url(tmp_path).split(":")[2].split("@")[0])  # the Redis password
            job_id = wait_until(store.latest_job, 60, message="the job")
            wait_until(lambda: store.counts(job_id).get("succeeded", 0) > 0, 60, 0.05, "rows done")
            assert not store.is_final(job_id)
            sandbox_token = (state / "sandbox" / "token").read_text().strip()
            watch.add(sandbox_token)
            during = {e.role: e.pid for e in Registry(state).entries()}
            assert {"redis", "sandbox", "worker", "flower", "run"} <= set(during), during
            rounds = watch.rounds
            wait_until(lambda: watch.rounds > rounds + 2, 30, 0.02, "the command lines read while rows are sent")
            assert set(during.values()) <= watch.seen
            out, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 1, out + err  # the demo's two planted failures
        assert "Traceback" not in err
        # The hints name the command as it was run (here: this interpreter with -m importer).
        assert f"{invoked_as(sys.argv[0], sys.executable, 'importer.__main__')} requeue {job_id} --error-code" in out

        # After it returned, with --keep-running: the services are up, and a dashboard; still no secret in sight.
        port = free_port()
        dashboard = subprocess.Popen([sys.executable, "-m", "importer", "dashboard", "--port", str(port)],
                                     cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/"), 60, message="the dashboard")
        after = {e.role: e for e in Registry(state).entries()}
        assert {"redis", "sandbox", "worker", "flower", "dashboard"} <= set(after) and "run" not in after
        rounds = watch.rounds
        wait_until(lambda: watch.rounds > rounds + 2, 30, 0.02, "the command lines read after the run")
        # The sandbox knows its own token only; the real one is not in its environment either.
        environ = Path(f"/proc/{after['sandbox'].pid}/environ").read_bytes()
        assert REAL_TOKEN.encode() not in environ and sandbox_token.encode() in environ
        assert b"--token" not in Path(f"/proc/{after['sandbox'].pid}/cmdline").read_bytes()
        worker_env = Path(f"/proc/{after['worker'].pid}/environ").read_bytes()
        assert REAL_TOKEN.encode() not in worker_env  # a sandbox job's worker has the sandbox's token

        # Redis wants its password; the folder and everything in it are the owner's only.
        port = (state / "redis" / "port").read_text().strip()
        if shutil.which("redis-cli"):
            ping = subprocess.run(["redis-cli", "-p", port, "ping"], capture_output=True, text=True, timeout=10)
            assert "NOAUTH" in ping.stdout + ping.stderr
        import redis

        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=int(port)).ping()
        assert _private(state) == []

        stopped = cli(tmp_path, "stop", env=env, timeout=120)
        assert stopped.returncode == 0 and "Redis: shut down cleanly" in stopped.stdout, stopped.stdout
        assert dashboard.wait(timeout=30) is not None
        watch.scan()
    assert watch.leaks == [], watch.leaks
    assert not any(entry.alive for entry in after.values())
    assert _private(state) == []


def _sandbox_courses(state: Path) -> dict:
    port = (state / "sandbox" / "port").read_text().strip()
    return httpx.get(f"http://127.0.0.1:{port}/_sandbox/stats", timeout=10).json()


@pytest.mark.parametrize("moment", ["together", "enqueued", "rows_done", "final"])
def test_two_runs_of_the_same_file_in_one_folder(kept, moment):
    """The second run starts at a moment of the first one's life: at once, once its job is enqueued, while rows are
    sent, once the job is final (the first one then shuts the stack down unless the second holds it)."""
    tmp_path = kept
    state = tmp_path / "state"
    shutil.copy(SAMPLES / "catalog_fixed.xlsx", tmp_path / "catalog.xlsx")
    env = env_for(tmp_path)
    argv = [sys.executable, "-m", "importer", "run", "catalog.xlsx", "--sandbox"]
    first = subprocess.Popen(argv + ["--results", "first.xlsx"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        if moment != "together":
            store = wait_until(lambda: embedded_store(tmp_path), 60, 0.05, "the embedded Redis")
            job_id = wait_until(store.latest_job, 60, 0.05, "the first run's job")
            if moment == "rows_done":
                wait_until(lambda: store.counts(job_id).get("succeeded", 0) > 0, 60, 0.05, "rows done")
            if moment == "final":
                wait_until(lambda: store.is_final(job_id), 120, 0.05, "the first run's job final")
        second = cli(tmp_path, *argv[3:], "--results", "second.xlsx", "--keep-running", env=env, timeout=240)
        out, err = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out + err
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Traceback" not in err + second.stderr
    for name in ("first.xlsx", "second.xlsx"):
        assert (tmp_path / name).exists()
    stats = _sandbox_courses(state)  # the second run kept the stack
    assert stats["courses_by_host"] == {"academy.sandbox.local": 20} and not stats["duplicate_titles"]
    if moment in ("enqueued", "rows_done"):
        assert "Following imp-" in second.stdout and "Resuming" not in second.stdout
    assert "stop" in cli(tmp_path, "stop", env=env, timeout=120).stdout


def _run_until_rows_are_done(tmp_path: Path, label: str, stdout: int) -> tuple[dict, subprocess.Popen]:
    """``run big.csv --sandbox`` of 60 courses at 60 per 10 s, returned once 5 rows succeeded (state, not time)."""
    lines = ["external_id,title,mangoes"] + [f"{label[0]}{i:03d},{label} course {i},{MANGO}" for i in range(60)]
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    env = env_for(tmp_path, TAGMANGO_RATE_LIMIT="60")
    proc = subprocess.Popen([sys.executable, "-m", "importer", "run", "big.csv", "--sandbox"], cwd=tmp_path, env=env,
                            stdout=stdout, stderr=subprocess.STDOUT, text=True)
    try:
        store = wait_until(lambda: embedded_store(tmp_path), 60, 0.05, "the embedded Redis")
        job_id = wait_until(store.latest_job, 60, 0.05, "the job")
        wait_until(lambda: store.counts(job_id).get("succeeded", 0) >= 5, 60, 0.05, "rows done")
    except BaseException:
        proc.kill()
        raise
    return env, proc


def test_a_killed_run_holds_nothing(kept):
    """SIGKILL a run while its rows are sent: the same run again finishes the job (each course once) and, being
    the last one out, stops the stack: the killed run's reference and run lock hold nothing."""
    tmp_path = kept
    state = tmp_path / "state"
    env, proc = _run_until_rows_are_done(tmp_path, "Killed", stdout=subprocess.DEVNULL)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    again = cli(tmp_path, "run", "big.csv", "--sandbox", "--json", env=env, timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    assert '"succeeded": 60' in again.stdout
    journal = (state / "sandbox" / "journal.jsonl").read_text()
    assert all(journal.count(f'"Killed course {i}"') >= 1 for i in range(60))
    assert Registry(state).entries() == []  # the last one out stopped everything; the killed run held nothing
    restarted = cli(tmp_path, "run", "big.csv", "--sandbox", "--json", "--keep-running", env=env, timeout=240)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    stats = _sandbox_courses(state)
    assert stats["courses_by_host"] == {"academy.sandbox.local": 60} and not stats["duplicate_titles"]


def test_a_terminated_run_stops_the_stack_it_started(kept):
    """SIGTERM (kill, a container stopping) ends a run as Ctrl-C does: exit 130, the rerun hint, and the Redis,
    worker and sandbox it started are stopped, not orphaned; the same command again finishes the job."""
    tmp_path = kept
    state = tmp_path / "state"
    env, proc = _run_until_rows_are_done(tmp_path, "Terminated", stdout=subprocess.PIPE)
    try:
        started = Registry(state).entries()
        assert {"redis", "worker", "sandbox"} <= {e.role for e in started}
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "run the same command again" in out.lower()
    assert Registry(state).entries() == [] and not any(entry.alive for entry in started)
    again = cli(tmp_path, "run", "big.csv", "--sandbox", "--json", env=env, timeout=240)
    assert again.returncode == 0 and '"succeeded": 60' in again.stdout, again.stdout + again.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code in (200, 401)
    except httpx.HTTPError:
        return False


def test_two_dashboards_then_stop_leaves_nothing_running(kept):
    tmp_path = kept
    state = tmp_path / "state"
    env = env_for(tmp_path, TAGMANGO_DASHBOARD_BASIC_AUTH="ops:dash-pw-3")
    done = cli(tmp_path, "run", str(SAMPLES / "catalog_courses.csv"), "--sandbox", "--keep-running", "--results",
               "r.csv", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    ports = [free_port(), free_port()]
    dashboards = [subprocess.Popen([sys.executable, "-m", "importer", "dashboard", "--port", str(port)], cwd=tmp_path,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
    try:
        for port in ports:
            wait_until(lambda port=port: _answers(f"http://127.0.0.1:{port}/"), 60, message=f"dashboard on {port}")
        wait_until(lambda: len([e for e in Registry(state).entries() if e.role == "dashboard"]) == 2, 30,
                   message="both dashboards registered")
        entries = Registry(state).entries()
        assert {"dashboard", "redis", "sandbox", "worker"} <= {e.role for e in entries}
        stopped = cli(tmp_path, "stop", env=env, timeout=180)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert stopped.stdout.count("dashboard: stopped") == 2, stopped.stdout
        for word in ("worker: stopped", "sandbox: stopped", "Redis: shut down cleanly"):
            assert word in stopped.stdout, stopped.stdout
        for dashboard in dashboards:
            assert dashboard.wait(timeout=30) is not None
        assert not [(e.role, e.pid) for e in entries if running(e.pid, e.started)]
        assert not any(_answers(f"http://127.0.0.1:{port}/") for port in ports)
        assert Registry(state).entries() == []
        again = cli(tmp_path, "stop", env=env)
        assert again.returncode == 0 and again.stdout.startswith("nothing was running"), again.stdout
    finally:
        for dashboard in dashboards:
            if dashboard.poll() is None:
                dashboard.kill()


def test_a_dashboard_other_machines_can_reach_needs_allow_remote(kept):
    tmp_path = kept
    env = env_for(tmp_path, TAGMANGO_DASHBOARD_BASIC_AUTH="ops:dash-pw-4")
    refused = cli(tmp_path, "dashboard", "--address", "0.0.0.0", env=env)
    assert refused.returncode == 3 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "--allow-remote" in refused.stderr
    assert not (tmp_path / "state").exists()  # nothing was started
    assert cli(tmp_path, "flower", "--address", "10.1.2.3", env=env).returncode == 3

    port = free_port()
    allowed = subprocess.Popen([sys.executable, "-m", "importer", "dashboard", "--address", "0.0.0.0", "--port",
                                str(port), "--allow-remote"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/"), 60, message="the dashboard")
        assert "stopped" in cli(tmp_path, "stop", env=env, timeout=120).stdout
        _, err = allowed.communicate(timeout=30)
        assert "warning:" in err and "plain HTTP" in err and "basic auth" in err
    finally:
        if allowed.poll() is None:
            allowed.kill()


def test_invoked_as():
    venv = Path(sys.executable).parent
    script = venv / "tagmango-import"
    assert invoked_as(".venv/bin/tagmango-import", sys.executable, "", {"PATH": "/usr/bin"}) == \
        ".venv/bin/tagmango-import"
    if script.exists():  # found on PATH: its name; not on PATH: the path as given
        assert invoked_as(str(script), sys.executable, "", {"PATH": str(venv)}) == "tagmango-import"
    assert invoked_as("/x/importer/__main__.py", "/opt/py/bin/python3", "importer.__main__",
                      {"PATH": "/usr/bin"}) == "/opt/py/bin/python3 -m importer"
    assert invoked_as("/x/importer/__main__.py", sys.executable, "importer.__main__",
                      {"PATH": str(Path(sys.executable).parent)}) == f"{Path(sys.executable).name} -m importer"
    assert invoked_as("/my dir/tagmango-import", sys.executable, "", {"PATH": "/usr/bin"}) == \
        "'/my dir/tagmango-import'"


def test_hints_name_the_command_as_it_was_typed(sandbox, redis_url, tmp_path):
    """Typed as a path (the quickstart's ``.venv/bin/tagmango-import``), the hints say that path."""
    script = Path(sys.executable).parent / "tagmango-import"
    if not script.exists():
        pytest.skip("no console script next to this interpreter")
    typed = os.path.relpath(script, tmp_path)
    env = env_for(tmp_path, TAGMANGO_REDIS_URL=redis_url, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN)
    env["PATH"] = "/usr/bin:/bin"  # not on PATH, as after the quickstart
    done = subprocess.run([typed, "run", str(SAMPLES / "catalog_courses.csv"), "--host", HOST, "--no-wait"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Follow it with: {typed} status imp-" in done.stdout
    usage = subprocess.run([typed, "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert f"Usage: {typed} run" in usage.stderr
    module = cli(tmp_path, "bogus", env=env)  # python -m importer, the interpreter not on PATH: its path
    assert f"Usage: {sys.executable} -m importer" in module.stderr and "Traceback" not in module.stderr


def test_stop_kept_helper_stops_what_the_registry_holds(tmp_path):
    """The tests' own clean-up finds every process through the registry (and the Redis with its password)."""
    env = env_for(tmp_path)
    done = cli(tmp_path, "run", str(SAMPLES / "catalog_courses.csv"), "--sandbox", "--keep-running", "--results",
               "r.csv", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    entries = Registry(tmp_path / "state").entries()
    assert {e.role for e in entries} >= {"redis", "sandbox", "worker"}
    stop_kept(tmp_path)
    wait_until(lambda: not any(running(e.pid, e.started) for e in entries), 30, message="all stopped")


@pytest.fixture
def held_port():
    """A port of 127.0.0.1 that a program holds and never answers on (listening, never accepting)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_flower_whose_port_is_taken_before_it_binds_starts_on_another(redis_url, tmp_path, monkeypatch, held_port):
    """The port looked free, then another process bound it (two folders starting Flower at once): Flower exits
    with 'Address already in use'; the stack starts it again on a free port instead of failing the run."""
    from importer.config import Config
    from importer.local import stack as stack_module
    from importer.local.stack import LocalStack
    from importer.local.stop import stop_all

    config = Config.from_env({**env_for(tmp_path), "TAGMANGO_FLOWER_BASIC_AUTH": FLOWER_AUTH}, command="run")
    port = held_port
    monkeypatch.setattr(stack_module, "port_free", lambda p: True)  # it looked free when checked
    stack = LocalStack(config)
    try:
        url = stack.start_flower(redis_url, port=port)
        assert url and not url.endswith(f":{port}")
        user, _, password = FLOWER_AUTH.partition(":")
        assert httpx.get(f"{url}/api/workers", auth=(user, password), timeout=5).status_code == 200
        assert "Address already in use" in (tmp_path / "state" / "flower" / "flower.log").read_text()
    finally:
        stack.release()
        stop_all(tmp_path / "state")


def test_embedded_redis_whose_port_is_taken_before_it_binds_starts_on_another(tmp_path, monkeypatch, held_port):
    """free_port() said free, then another process bound the port before redis-server did (two folders starting
    at once): redis-server exits; the folder's Redis starts on another free port instead of failing the command."""
    from importer.local import ports
    from importer.local.embedded import EmbeddedRedis
    from importer.local.stop import stop_all

    port = held_port
    real_free_port = ports.free_port
    handed = iter([port])
    monkeypatch.setattr(ports, "free_port", lambda: next(handed, None) or real_free_port())
    redis_ = EmbeddedRedis(tmp_path / "state")
    try:
        url = redis_.start()
        assert not url.endswith(f":{port}/0")
        assert redis.Redis.from_url(url).ping()
        assert "Address already in use" in (tmp_path / "state" / "redis" / "redis.log").read_text()
    finally:
        if redis_.proc is not None:
            redis_.proc.terminate()
            redis_.proc.wait(timeout=10)
        stop_all(tmp_path / "state")


def test_sandbox_whose_first_port_is_taken_before_it_binds_starts_on_another(tmp_path, monkeypatch, held_port):
    """The same race for the sandbox's first start: a port that looked free is held (here by a socket that never
    answers) when the sandbox binds; it exits and the stack starts it on another port, and remembers that one."""
    from importer.config import Config
    from importer.local import ports
    from importer.local.stack import LocalStack
    from importer.local.stop import stop_all

    port = held_port
    real_free_port = ports.free_port
    handed = iter([port])
    monkeypatch.setattr(ports, "free_port", lambda: next(handed, None) or real_free_port())
    stack = LocalStack(Config.from_env(env_for(tmp_path), command="run"))
    try:
        url = stack.start_sandbox(stack.sandbox_token())
        assert not url.endswith(f":{port}")
        assert httpx.get(f"{url}/_sandbox/stats", timeout=5).json()["pid"] in {e.pid for e in
                                                                             stack.registry.services("sandbox")}
        assert (tmp_path / "state" / "sandbox" / "port").read_text() == url.rsplit(":", 1)[1]
        assert "address already in use" in (tmp_path / "state" / "sandbox" / "sandbox.log").read_text().lower()
    finally:
        stack.release()
        stop_all(tmp_path / "state")


def test_sandbox_whose_remembered_port_is_taken_says_what_to_do(tmp_path, held_port):
    """A later start keeps the port of last time (this folder's jobs name that URL); when another program holds it
    now, the error names the port and the way out, instead of moving the sandbox without a word."""
    from importer.config import Config
    from importer.local.stack import LocalStack
    from importer.local.state import private_dir
    from importer.local.stop import stop_all

    port = held_port
    stack = LocalStack(Config.from_env(env_for(tmp_path), command="run"))
    try:
        token = stack.sandbox_token()
        (private_dir(tmp_path / "state" / "sandbox") / "port").write_text(str(port))
        with pytest.raises(RuntimeError) as failed:
            stack.start_sandbox(token)
        assert f"port {port}" in str(failed.value) and "delete" in str(failed.value)
        assert not stack.registry.services("sandbox")
    finally:
        stack.release()
        stop_all(tmp_path / "state")
