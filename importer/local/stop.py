"""``tagmango-import stop``: stop what ``--keep-running`` (and ``dashboard``, ``flower``) left running from
this state directory, in an order that loses nothing: the dashboard and Flower (Flower saves its state),
the worker (a warm shutdown hands unfinished rows back to Redis), the sandbox, and Redis last, with a
clean ``SHUTDOWN`` that flushes its append-only file.

Each process is found through the pid (or port) file its starter wrote, and checked to be what the file
says before it is signalled, so a stale file never stops an unrelated process that reused the pid.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

#: How long each service may take to stop after SIGTERM before it gets SIGKILL, in seconds.
GRACE_S = {"dashboard": 10.0, "Flower": 15.0, "worker": 45.0, "sandbox": 10.0}


@dataclass(frozen=True)
class Service:
    name: str
    pid_file: Path
    marker: str  # a word its command line contains


def services(state: Path) -> list[Service]:
    return [Service("dashboard", state / "dashboard" / "pid", "dashboard"),
            Service("Flower", state / "flower" / "pid", "flower"),
            Service("worker", state / "worker.pid", "worker"),
            Service("sandbox", state / "sandbox" / "pid", "sandbox")]


def stop_all(state: Path) -> list[str]:
    """Stop everything; one line per service saying what happened."""
    lines = [_stop(service) for service in services(state)]
    lines.append(stop_redis(state))
    return [line for line in lines if line]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" not in status


def _stop(service: Service) -> str | None:
    try:
        pid = int(service.pid_file.read_text())
    except (OSError, ValueError):
        return None
    cmdline = _cmdline(pid)
    if not running(pid) or (cmdline and service.marker not in cmdline):
        service.pid_file.unlink(missing_ok=True)
        return f"{service.name}: was not running (pid {pid})"
    killed = _terminate(pid, GRACE_S[service.name])
    service.pid_file.unlink(missing_ok=True)
    return f"{service.name}: {'killed' if killed else 'stopped'} (pid {pid})"


def _terminate(pid: int, grace: float) -> bool:
    """SIGTERM to the process group (its own session), SIGKILL after ``grace``; True if it had to be killed."""
    def signal_group(sig: int) -> None:
        try:
            os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
        except OSError:
            pass

    signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not running(pid):
            return False
        time.sleep(0.1)
    signal_group(signal.SIGKILL)
    return True


def stop_redis(state: Path, timeout: float = 30.0) -> str | None:
    import redis

    port_file = state / "redis" / "port"
    try:
        port = int(port_file.read_text())
    except (OSError, ValueError):
        return None
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=10)
    try:
        pid = int(client.info("server")["process_id"])
        client.shutdown()  # saves nothing extra (--save ""), fsyncs the append-only file
    except redis.ConnectionError:
        port_file.unlink(missing_ok=True)
        return "Redis: was not running"
    except redis.RedisError as exc:
        return f"Redis: not stopped ({exc})"
    deadline = time.monotonic() + timeout
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    port_file.unlink(missing_ok=True)
    return f"Redis: shut down cleanly (pid {pid}, port {port}, data in {state / 'redis'})"
