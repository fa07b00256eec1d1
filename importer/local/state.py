"""The state folder (``.tagmango/``, ``TAGMANGO_STATE_DIR``): private files, the processes it started, who uses them.

Everything in it is the owner's only: the folder is 0700, every file this process writes there is created 0600,
and the processes started here run with umask 077 (``CHILD_UMASK``), so what redis-server, the sandbox, Flower
and the worker write there is private too. The Redis password and the sandbox's token live here.

The processes the folder started are in one registry, ``procs/``: one file per process (its pid, what it is,
its start time, so a reused pid is never taken for it). Two kinds:

- services (redis-server, the worker, the sandbox, Flower started in the background): stopped by ``stop``, or by
  the last command out;
- commands that use them (``run``, ``requeue``, ``status``, ``dashboard``, ...): each holds the stack while it
  runs. When the last one leaves, it shuts the services down, unless one of them asked to keep them
  (``--keep-running``: the ``kept`` marker, cleared by ``stop``). A command killed with SIGKILL leaves its file,
  but a dead pid holds nothing.

Starting a service, attaching to the stack and the last one's shutdown happen under one lock (``stack.lock``,
``flock``: released by the kernel if its holder dies), so a command never attaches to a stack that is going away.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

#: The umask of every process started here: what they write in the state folder is the owner's only.
CHILD_UMASK = 0o077
#: Variables holding secrets that a process started here gets only when it needs them.
SECRETS = ("TAGMANGO_API_TOKEN", "TAGMANGO_CREDENTIALS_FILE", "TAGMANGO_SANDBOX_TOKENS", "TAGMANGO_REDIS_URL",
           "REDIS_URL", "TAGMANGO_FLOWER_BASIC_AUTH", "TAGMANGO_DASHBOARD_BASIC_AUTH", "FLOWER_BASIC_AUTH")
#: Entries of the state folder this importer makes (a legacy folder's are made private when first used).
OURS = ("redis", "sandbox", "flower", "dashboard", "procs", "worker.log", "worker.pid", "flower.db",
        "stack.lock", "kept")


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """An environment for a process started here, without the secrets it is then given one by one."""
    return {k: v for k, v in environ.items() if k not in SECRETS}


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) as a folder only its owner may use."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def secure(state_dir: Path) -> Path:
    """The state folder, made 0700 with what this importer keeps in it private (folders 0700, files 0600)."""
    private_dir(state_dir)
    for name in OURS:
        top = state_dir / name
        if not top.exists() or top.is_symlink():
            continue
        paths = [top] + (list(top.rglob("*")) if top.is_dir() else [])
        for path in paths:
            try:
                if path.is_symlink():
                    continue
                mode = path.stat().st_mode & 0o777
                if mode & 0o077:
                    os.chmod(path, mode & 0o700)
            except OSError:  # gone meanwhile
                pass
    return state_dir


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """A file descriptor on ``path``, created 0600 (and made 0600 if it was not)."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, atomically, readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def log_file(path: Path):  # noqa: ANN201 - a binary file object handed to a child as its stdout
    """A log for a child's output, appended to, 0600."""
    return os.fdopen(open_private(path), "ab")


def secret(path: Path, nbytes: int = 32) -> str:
    """The secret kept in ``path`` (0600), made once: random, URL-safe."""
    try:
        value = path.read_text().strip()
        if value:
            os.chmod(path, 0o600)
            return value
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    value = secrets.token_urlsafe(nbytes)
    try:  # O_EXCL: two commands making it at once agree on the first one's
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return secret(path, nbytes)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


# -- processes ---------------------------------------------------------------------------------------------

def start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot, /proc/PID/stat), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def running(pid: int, started: str | None = None) -> bool:
    """The process is alive, not a zombie, and (when ``started`` is given) the same one that started then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not ours
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    after = stat.rpartition(")")[2].split()
    if after and after[0] in ("Z", "X"):
        return False
    return started is None or (len(after) > 19 and after[19] == started)


@dataclass(frozen=True)
class Entry:
    pid: int
    role: str
    #: A command that uses the stack (holds it while it runs), rather than a service of the stack.
    holds: bool
    started: str | None
    info: dict
    path: Path

    @property
    def alive(self) -> bool:
        return running(self.pid, self.started)


class Registry:
    """``procs/``: every process this state folder started or that uses its services."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "procs"

    def add(self, role: str, pid: int, *, holds: bool = False, **info: object) -> Entry:
        private_dir(self.dir)
        started = start_time(pid)
        record = {"pid": pid, "role": role, "holds": holds, "started": started, **info}
        path = self.dir / f"{pid}.json"
        write_private(path, json.dumps(record))
        return Entry(pid, role, holds, started, dict(info), path)

    def remove(self, pid: int) -> None:
        (self.dir / f"{pid}.json").unlink(missing_ok=True)

    def entries(self) -> list[Entry]:
        """The live entries, oldest first; the files of processes that are gone are removed."""
        found = []
        for path in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                record = json.loads(path.read_text())
                entry = Entry(int(record.pop("pid")), str(record.pop("role")), bool(record.pop("holds", False)),
                              record.pop("started", None), record, path)
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if entry.alive:
                found.append(entry)
            else:
                path.unlink(missing_ok=True)
        return sorted(found, key=lambda e: (int(e.started or 0), e.pid))

    def services(self, role: str | None = None) -> list[Entry]:
        return [e for e in self.entries() if not e.holds and (role is None or e.role == role)]

    def holders(self, but: int | None = None) -> list[Entry]:
        return [e for e in self.entries() if e.holds and e.pid != but]


class StackLock:
    """``stack.lock``: one command at a time starts, attaches to or shuts down this folder's services.

    Re-entrant within a process; the kernel releases it when its holder dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "stack.lock"
        self.fd: int | None = None
        self.depth = 0
        self.said = False

    @staticmethod
    def _try(fd: int, patience: float) -> bool:
        """Take the lock if it comes free within ``patience`` seconds (a short wait is not worth a message)."""
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)

    @contextlib.contextmanager
    def held(self, waiting: str | None = None) -> Iterator[None]:
        if self.depth == 0:
            private_dir(self.path.parent)
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
            if not self._try(fd, patience=1.0):
                if waiting and not self.said:
                    print(waiting, file=sys.stderr)
                    self.said = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            self.fd = fd
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0 and self.fd is not None:
                os.close(self.fd)  # releases the flock
                self.fd = None
