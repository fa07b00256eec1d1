"""What commands start on this machine when no Redis is configured: Redis, a worker, the sandbox, Flower.

Everything lives under the state folder (``.tagmango/`` by default, ``TAGMANGO_STATE_DIR``, see
``importer.local.state``): Redis data with its append-only file and password, the sandbox's data and token,
the logs, and the registry of the processes started here. Several commands may use the stack at once: each
holds it while it runs, and the last one out shuts it down, unless one of them was run with ``--keep-running``
(then ``stop`` does). No secret is ever on a command line: the worker gets its token and the Redis URL
(with its password) through its environment, the sandbox its token through ``TAGMANGO_SANDBOX_TOKENS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from importer.config import Config
from importer.exitcodes import CommandError
from importer.local import state, stop
from importer.local.embedded import EmbeddedRedis
from importer.local.ports import DidNotStart, port_free, start_on_free_port
from tasks.defaults import DEFAULT_WORKER_CONCURRENCY, QUEUE, WORKER_POOL

SANDBOX_HOST = "academy.sandbox.local"
#: Mild faults for the demo, so that retries and adoption of committed-but-failed creates are visible.
#: A committed-but-failed create answers late half the time (12 s); the worker's read timeout against the
#: local sandbox is 8 s (``SANDBOX_HTTP_TIMEOUT``) so that the demo shows the timeout and adoption without
#: sitting through the real API's 30 s timeout.
DEMO_FAULTS = ["--error-rate", "0.03", "--drop-rate", "0.01", "--commit-fail-rate", "0.04", "--latency", "30-150",
               "--hang-seconds", "12", "--seed", "7"]
SANDBOX_HTTP_TIMEOUT = "8"
WAITING = "note: waiting for another command of this folder to finish starting or stopping the local services"


def worker_argv(*, concurrency: int = DEFAULT_WORKER_CONCURRENCY, loglevel: str = "WARNING",
                hostname: str | None = None) -> list[str]:
    """``-m celery ...`` for a worker of the import queue, as every starter runs it (run, `worker`, the tests):
    WORKER_POOL, ``concurrency`` rows in flight, events on for Flower, no gossip or mingle (workers share nothing but
    Redis)."""
    argv = ["-m", "celery", "-A", "tasks", "worker", "--pool", WORKER_POOL, "--concurrency", str(concurrency), "-Q",
            QUEUE, "-E", "--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    return argv + (["--hostname", hostname] if hostname else [])


class LocalStack:
    """This command's use of the state folder's services: attach (hold), start what is missing, release."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.dir = config.state_dir
        self.registry = state.Registry(self.dir)
        self.lock = state.StackLock(self.dir)
        self.redis = EmbeddedRedis(self.dir)
        self.attached = False
        self.sandbox_url: str | None = None

    # -- holding the stack -------------------------------------------------------------------------
    def attach(self, **info: object) -> None:
        """Hold the stack for this command (again, with ``info``, to say more of it: a dashboard's address)."""
        with self.lock.held(WAITING):
            if not self.attached:
                state.secure(self.dir)
                if not self.registry.entries():  # nothing running: a --keep-running of an earlier stack is over
                    (self.dir / "kept").unlink(missing_ok=True)
            self.registry.add(self.config.command or "command", os.getpid(), holds=True, **info)
            self.attached = True

    def release(self, keep_running: bool = False) -> list[str]:
        """Let go of the stack; the last command out shuts down every service, unless they are to be kept."""
        if not self.attached:
            return []
        with self.lock.held(WAITING):
            self.registry.remove(os.getpid())
            self.attached = False
            if keep_running:
                state.write_private(self.dir / "kept", f"{os.getpid()}\n")
            if (self.dir / "kept").exists() or self.registry.holders():
                return []
            return stop.stop_services(self.dir)

    def holders(self) -> list:
        """The other commands holding the stack now."""
        return self.registry.holders(but=os.getpid())

    # -- Redis ---------------------------------------------------------------------------------
    def start_redis(self) -> str:
        with self.lock.held(WAITING):
            self.attach()
            url = self.redis.start()
            if self.redis.proc is not None:
                self.registry.add("redis", self.redis.proc.pid, port=int(url.rsplit(":", 1)[1].split("/")[0]))
            return url

    # -- sandbox -------------------------------------------------------------------------------
    def sandbox_token(self) -> str:
        """The sandbox's own token: random, made once per state folder (``sandbox/token``, 0600). A real token is
        never sent to the sandbox."""
        return state.secret(self.dir / "sandbox" / "token")

    def start_sandbox(self, token: str, faults: bool = True) -> str:
        """The sandbox as its own process, on the same port as last time (so ledgers stay valid)."""
        with self.lock.held(WAITING):
            self.attach()
            sdir = state.private_dir(self.dir / "sandbox")
            port_file = sdir / "port"
            remembered = port_file.exists()
            port = int(port_file.read_text()) if remembered else None
            running = self.registry.services("sandbox")
            if running and port is not None and _up(f"http://127.0.0.1:{port}", running[0].pid):
                self.sandbox_url = f"http://127.0.0.1:{port}"
                return self.sandbox_url
            env = {**state.without_secrets(self.config.environ), "TAGMANGO_SANDBOX_TOKENS": token}
            # A first start takes a free port (another one if that is taken before the sandbox binds it); a later
            # one keeps the port of last time (the jobs and ledgers of this folder name that URL).
            try:
                _, port = start_on_free_port(lambda p: self._launch_sandbox(sdir, p, env, faults), port,
                                             tries=1 if remembered else 3)
            except DidNotStart as exc:
                if not remembered:
                    raise
                raise RuntimeError(f"{exc}; if another program now holds port {port}, free it, or delete "
                                   f"{port_file} to let the sandbox pick another (this folder's sandbox "
                                   "jobs name the old port and cannot be resumed then)") from None
            url = f"http://127.0.0.1:{port}"
            state.write_private(port_file, str(port))
            self.sandbox_url = url
            return url

    def _launch_sandbox(self, sdir: Path, port: int, env: dict[str, str], faults: bool) -> None:
        url = f"http://127.0.0.1:{port}"
        with state.log_file(sdir / "sandbox.log") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "importer", "sandbox", "--port", str(port), "--state-dir", str(sdir),
                 *(DEMO_FAULTS if faults else [])],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, umask=state.CHILD_UMASK)
        self.registry.add("sandbox", proc.pid, url=url)
        deadline = time.monotonic() + 20
        while not _up(url, proc.pid):  # ours: another folder's sandbox may hold the port
            exited = proc.poll() is not None
            if exited or time.monotonic() > deadline:
                proc.kill()
                self.registry.remove(proc.pid)
                raise DidNotStart(f"the sandbox did not start on port {port} (see {sdir / 'sandbox.log'})", exited)
            time.sleep(0.1)

    # -- worker --------------------------------------------------------------------------------
    def worker(self) -> dict | None:
        """The worker running from this folder (its registry entry's details), if one is."""
        found = self.registry.services("worker")
        return {"pid": found[0].pid, **found[0].info} if found else None

    def start_worker(self, redis_url: str, api_url: str, token: str, concurrency: int | None = None) -> bool:
        """A Celery worker process, unless one is running (True: started now). Its token and the Redis URL reach it
        through its environment only."""
        with self.lock.held(WAITING):
            self.attach()
            running = self.worker()
            if running:
                if running.get("api_url", api_url).rstrip("/") != api_url.rstrip("/"):
                    raise CommandError(f"the local worker (pid {running['pid']}) sends to {running['api_url']}, not to "
                                       f"{api_url}: let its import finish, or `{self.config.program} stop`, then run "
                                       "this again")
                return False
            env = {**state.without_secrets(self.config.environ), "TAGMANGO_REDIS_URL": redis_url,
                   "TAGMANGO_API_URL": api_url, "TAGMANGO_API_TOKEN": token, "PYTHONUNBUFFERED": "1"}
            if api_url == self.sandbox_url:
                env.setdefault("TAGMANGO_HTTP_TIMEOUT", SANDBOX_HTTP_TIMEOUT)
            elif self.config.environ.get("TAGMANGO_CREDENTIALS_FILE"):  # a real creator's: the workers' tokens
                env["TAGMANGO_CREDENTIALS_FILE"] = self.config.environ["TAGMANGO_CREDENTIALS_FILE"]
            with state.log_file(self.dir / "worker.log") as log:
                proc = subprocess.Popen(
                    [sys.executable, *worker_argv(concurrency=concurrency or self.config.settings.worker_concurrency,
                                                  hostname=f"local-{os.getpid()}@%h")],
                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, umask=state.CHILD_UMASK)
            self.registry.add("worker", proc.pid, api_url=api_url)
            return True

    # -- Flower (run --flower) ------------------------------------------------------------------
    def start_flower(self, redis_url: str, port: int = 5555) -> str:
        """Flower in the background (importer/local/flower.py), subscribed to events before this returns."""
        from importer.local import flower

        with self.lock.held(WAITING):
            self.attach()
            url = flower.known_url(self.dir)
            if url:
                print(f"Flower already running on {url}", file=sys.stderr)
                return url
            auth, generated = flower.auth_for(self.config)
            try:
                start_on_free_port(lambda p: flower.start(self.config, redis_url, auth, p),
                                   port if port_free(port) else None)
            except DidNotStart as exc:
                raise CommandError(str(exc)) from None
            url = flower.known_url(self.dir) or ""
        print(f"Flower on {url}" + (f"  basic auth {auth}" if generated else "  (TAGMANGO_FLOWER_BASIC_AUTH)"),
              file=sys.stderr)
        return url


def _up(url: str, pid: int) -> bool:
    """The sandbox process ``pid`` answers at ``url`` (not another folder's on a reused port)."""
    try:
        answer = httpx.get(f"{url}/_sandbox/stats", timeout=1.0)
        return answer.status_code == 200 and answer.json().get("pid") == pid
    except (httpx.HTTPError, ValueError):
        return False
