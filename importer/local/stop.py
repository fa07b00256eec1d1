"""``tagmango-import stop``: stop every process this state folder started, in an order that loses nothing.

First the commands that use the stack (a ``dashboard``, a ``flower`` command, a ``run`` following its job): each
gets SIGINT, as a Ctrl-C, and ends as it does then (a run says how to resume). Then the services, under the
stack's lock: Flower (it saves its state), the worker (a warm shutdown hands unfinished rows back to Redis), the
sandbox, and Redis last, with a clean ``SHUTDOWN`` that flushes its append-only file.

Every process is found in the folder's registry (``importer.local.state``), which records its start time, so a
file left by a process that is gone never stops an unrelated process that reused its pid. The pid files of
earlier versions (``worker.pid``, ``sandbox/pid``, ...) are read too, checked against the process's command line.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from importer.local.state import Entry, Registry, StackLock, running, write_private

#: How long each process may take to stop after its signal before it gets SIGKILL, in seconds.
GRACE_S = {"dashboard": 10.0, "flower": 15.0, "worker": 45.0, "sandbox": 10.0, "redis": 30.0}
COMMAND_GRACE_S = 60.0
#: The order services stop in; Redis is last.
ORDER = ("flower", "worker", "sandbox")
NAMES = {"flower": "Flower", "worker": "worker", "sandbox": "sandbox", "redis": "Redis"}


def stop_all(state: Path) -> list[str]:
    """Stop everything the folder started; one line per process saying what happened."""
    if not state.is_dir():
        return []
    registry = Registry(state)
    lines = []
    commands = registry.holders(but=os.getpid())
    if commands:
        write_private(state / "kept", "stop\n")  # the commands leave the services to us: we say what we stop
    for entry in commands:
        killed = _terminate(entry, signal.SIGINT, COMMAND_GRACE_S)
        lines.append(f"{entry.role}: {'killed' if killed else 'stopped'} (pid {entry.pid})")
    with StackLock(state).held("note: waiting for a command of this folder to finish starting or stopping services"):
        lines += stop_services(state)
        (state / "kept").unlink(missing_ok=True)
    lines += [line for line in (_stop_legacy(s) for s in legacy_services(state)) if line]
    return lines


def stop_services(state: Path) -> list[str]:
    """Stop the services (not the commands) of the folder: Flower, worker, sandbox, then Redis. The caller holds
    the stack's lock."""
    registry = Registry(state)
    services = registry.services()
    rank = {role: n for n, role in enumerate(ORDER)}
    lines = []
    for entry in sorted((e for e in services if e.role != "redis"), key=lambda e: rank.get(e.role, len(ORDER))):
        killed = _terminate(entry, signal.SIGTERM, GRACE_S.get(entry.role, 15.0))
        registry.remove(entry.pid)
        lines.append(f"{NAMES.get(entry.role, entry.role)}: {'killed' if killed else 'stopped'} (pid {entry.pid})")
    said = stop_redis(state)
    if said:
        lines.append(said)
    for entry in registry.services("redis"):  # one that did not answer SHUTDOWN
        killed = _terminate(entry, signal.SIGTERM, GRACE_S["redis"])
        lines.append(f"Redis: {'killed' if killed else 'stopped'} (pid {entry.pid})")
    for entry in registry.services():
        registry.remove(entry.pid)
    return lines


def _signal(pid: int, sig: int, group: bool) -> None:
    try:
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except OSError:
        pass


def _terminate(entry: Entry, sig: int, grace: float) -> bool:
    """``sig`` (to its process group when it leads one, as the services do), SIGKILL after ``grace``; True if it
    had to be killed. Never signals a process that is not the one registered (another start time)."""
    if not entry.alive:
        return False
    group = not entry.holds
    _signal(entry.pid, sig, group)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not running(entry.pid, entry.started):
            return False
        time.sleep(0.1)
    if running(entry.pid, entry.started):
        _signal(entry.pid, signal.SIGKILL, group)
    return True


def stop_redis(state: Path, timeout: float = 30.0) -> str | None:
    """``SHUTDOWN`` the folder's redis-server (with its password), waiting until the process is gone."""
    import redis

    port_file = state / "redis" / "port"
    try:
        port = int(port_file.read_text())
    except (OSError, ValueError):
        return None
    password_file = state / "redis" / "password"
    password = password_file.read_text().strip() if password_file.exists() else None
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_connect_timeout=1, socket_timeout=10)
    try:
        try:
            pid = int(client.info("server")["process_id"])
        except redis.AuthenticationError:  # an older version's, without a password
            client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=10)
            pid = int(client.info("server")["process_id"])
        client.shutdown()  # saves nothing extra (save ""), fsyncs the append-only file
    except redis.ConnectionError:
        port_file.unlink(missing_ok=True)
        return None
    except redis.RedisError as exc:
        return f"Redis: not stopped ({exc})"
    deadline = time.monotonic() + timeout
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    port_file.unlink(missing_ok=True)
    Registry(state).remove(pid)
    return f"Redis: shut down cleanly (pid {pid}, port {port}, data in {state / 'redis'})"


# -- pid files of earlier versions --------------------------------------------------------------------------

@dataclass(frozen=True)
class Service:
    name: str
    pid_file: Path
    marker: str  # a word its command line contains


def legacy_services(state: Path) -> list[Service]:
    return [Service("dashboard", state / "dashboard" / "pid", "dashboard"),
            Service("Flower", state / "flower" / "pid", "flower"),
            Service("worker", state / "worker.pid", "worker"),
            Service("sandbox", state / "sandbox" / "pid", "sandbox")]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _stop_legacy(service: Service) -> str | None:
    try:
        pid = int(service.pid_file.read_text())
    except (OSError, ValueError):
        return None
    service.pid_file.unlink(missing_ok=True)
    if not running(pid) or service.marker not in _cmdline(pid):
        return None
    killed = _terminate(Entry(pid, service.name, False, None, {}, service.pid_file), signal.SIGTERM, 15.0)
    return f"{service.name}: {'killed' if killed else 'stopped'} (pid {pid})"
