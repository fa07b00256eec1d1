"""What a command works with: Redis (configured, or the embedded one started here), what it starts on this
machine (``importer.local.stack``), and the one door to TagMango per credential (``tasks.gateway``).

``target``/``credential_for`` decide where rows go: the sandbox (started if needed, with its own token) or a
real creator's host with the token the workers will use.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import redis
from redis.exceptions import LockError

from importer.config import Config
from importer.exitcodes import CommandError
from importer.local.stack import SANDBOX_HOST, LocalStack
from importer.local.state import running, start_time
from tasks.credentials import Credential
from tasks.gateway import Door, Gateway
from tasks.job import Job
from tasks.rowstore import RowStore


class Session:
    """Redis (configured or embedded) plus whatever this command had to start; stops it at the end."""

    def __init__(self, config: Config, keep_running: bool = False) -> None:
        self.config = config
        self.keep_running = keep_running
        self.stack = LocalStack(config)
        self.url = config.redis_url
        self.embedded = self.url is None
        self._gateway: Gateway | None = None
        try:
            if self.embedded:
                try:
                    self.url = self.stack.start_redis()
                except RuntimeError as exc:
                    raise CommandError(str(exc)) from None
            reachable(self.url)
            self.store = RowStore.from_url(self.url, config.settings.dead_letter_days)
        except BaseException:
            self.stack.release(keep_running)
            raise

    def door(self, cred: Credential) -> Door:
        """The one door to TagMango for a credential (tasks.gateway): the workers' limiter, shared."""
        if self._gateway is None:
            self._gateway = Gateway.from_settings(self.store.r, self.config.settings)
        return self._gateway.door(cred)

    def job_id(self, job: str | None) -> str:
        job_id = job if job and job != "latest" else self.store.latest_job()
        if not job_id or self.store.job(job_id) is None:
            raise CommandError(f"no such job: {job}" if job else "no jobs yet")
        return job_id

    # -- where rows go ---------------------------------------------------------------------------
    def target(self, sandbox: bool, host: str | None) -> Credential:
        """The credential an import or a dry run goes to: the sandbox (started if needed), or ``--host``/
        ``TAGMANGO_HOST`` with the token the workers will use (TAGMANGO_CREDENTIALS_FILE or TAGMANGO_API_TOKEN)."""
        if sandbox:
            token = self.stack.sandbox_token()
            return Credential(self._sandbox(token), host or self.config.host or SANDBOX_HOST, token)
        return real_target(self.config, host)

    def _sandbox(self, token: str) -> str:
        try:
            return self.stack.start_sandbox(token)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None

    def credential_for(self, job: Job) -> Credential:
        """The token the job's rows will be sent with (the sandbox's own for a sandbox job, started if needed)."""
        if job.sandbox:
            token = self.stack.sandbox_token()
            api_url = self._sandbox(token) if self.embedded else job.api_url
            if api_url != job.api_url:
                raise CommandError(f"the sandbox of this job ran at {job.api_url}, it is now at {api_url}")
            return Credential(api_url, job.host, token)
        return self.config.credential(job.host, job.api_url)

    def start_workers_for(self, job: Job) -> None:
        """In embedded mode, a worker (and the sandbox, for a sandbox job) to process the job."""
        if not self.embedded:
            return
        cred = self.credential_for(job)
        self.stack.start_worker(self.url, cred.api_url, cred.token)

    # -- one run per job -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def job_lock(self, fingerprint: str, quiet: bool = False) -> Iterator[None]:
        """While held, no other command (on any machine using this Redis) looks up, matches, enqueues, resumes or
        starts workers for the same files to the same target: of two runs started together, the second finds
        the first one's job. Held in Redis with a TTL renewed while it is held (a killed holder frees it)."""
        name = f"tm:run-lock:{fingerprint}"
        lock = self.store.r.lock(name, timeout=LOCK_TTL_S, sleep=0.1, thread_local=False)
        me = os.getpid()
        token = f"{socket.gethostname()} {me} {start_time(me)} {os.urandom(6).hex()}"
        said = False
        while not lock.acquire(blocking=False, token=token):
            holder = self.store.r.get(name)
            if holder and _dead_here(holder):  # killed while holding it, on this machine: no need to wait out its TTL
                self.store.r.eval(DELETE_IF, 1, name, holder)
                continue
            if not said and not quiet:
                print("note: another run of the same files to the same target is starting; waiting for it",
                      file=sys.stderr)
                said = True
            time.sleep(0.1)
        done = threading.Event()

        def renew() -> None:
            while not done.wait(LOCK_TTL_S / 3):
                try:
                    lock.extend(LOCK_TTL_S, replace_ttl=True)
                except (LockError, redis.RedisError):
                    return

        threading.Thread(target=renew, daemon=True, name="run-lock").start()
        try:
            yield
        finally:
            done.set()
            try:
                lock.release()
            except (LockError, redis.RedisError):
                pass

    def following(self, job: dict) -> str | None:
        """Who else is on this job now, if anyone: the command running it (on this machine, alive), or the local
        worker. None: nobody, so this command may resume it."""
        runner = job.get("runner") or {}
        if runner.get("host") == socket.gethostname() and runner.get("pid") != os.getpid() and \
                running(int(runner.get("pid") or 0), runner.get("started")):
            return f"pid {runner['pid']} is running it"
        if self.embedded and self.stack.worker():
            return f"the local worker (pid {self.stack.worker()['pid']}) is on it"
        if not self.embedded and runner.get("host") and runner.get("host") != socket.gethostname():
            return f"it was started on {runner['host']}"
        return None

    def run_job(self, job_id: str) -> None:
        """Record this command as the one running the job (``following`` names it to a second run)."""
        me = os.getpid()
        self.store.set_job(job_id, runner={"pid": me, "host": socket.gethostname(), "started": start_time(me)})

    def close(self) -> None:
        """Done with Redis and the local services: the last command out of the state folder stops them, unless
        one asked to keep them running."""
        if self._gateway is not None:
            self._gateway.close()
        self.stack.release(self.keep_running)


#: The per-job run lock's time to live, renewed every third of it while held.
LOCK_TTL_S = 30.0
DELETE_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _dead_here(holder: str | bytes) -> bool:
    """A run lock's holder (``host pid start nonce``) is a process of this machine that is gone."""
    if isinstance(holder, bytes):
        holder = holder.decode(errors="replace")
    parts = holder.split()
    if len(parts) != 4 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    return not running(int(parts[1]), None if parts[2] == "None" else parts[2])


def real_target(config: Config, host: str | None) -> Credential:
    """A real creator's host and the workers' token for it; a missing token or host is a one-line error (checked
    before anything is started)."""
    host = host or config.host
    if not host:
        if not config.has_token:
            raise CommandError("TAGMANGO_API_TOKEN is not set: export your TagMango API key (never pass it on the "
                               "command line), or use --sandbox")
        raise CommandError("which creator? set TAGMANGO_HOST or --host to the whitelabel host, e.g. "
                           "yourname.tagmango.com")
    return config.credential(host, config.api_url)


#: How long a command waits for Redis to answer its first PING.
PING_TIMEOUT_S = 5.0


def reachable(url: str) -> None:
    """Redis at ``url`` answers a PING within ``PING_TIMEOUT_S``, else a ``CommandError`` (exit 3). With timeouts
    and no retries: a program that takes the connection and never answers (a wrong port) must not hang a command.
    (The store's own client has no read timeout: a worker's blocking reads wait longer.)"""
    probe = redis.Redis.from_url(url, socket_connect_timeout=PING_TIMEOUT_S, socket_timeout=PING_TIMEOUT_S,
                                 retry=None)
    try:
        probe.ping()
    except redis.TimeoutError:
        raise CommandError(f"cannot reach Redis at {safe_url(url)}: something takes the connection but does not "
                           f"answer within {PING_TIMEOUT_S:g} s (is it Redis?)") from None
    except redis.RedisError as exc:
        raise CommandError(f"cannot reach Redis at {safe_url(url)}: {exc}") from None
    finally:
        probe.close()


def safe_url(url: str) -> str:
    """A Redis URL without its password, for messages."""
    parts = urlsplit(url)
    return url.replace(parts.password, "***") if parts.password else url
