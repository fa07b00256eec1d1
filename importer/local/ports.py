"""Ports of 127.0.0.1 for the local stack's servers (Redis, the sandbox, Flower).

A port that is free when looked at can be bound by another program before our server binds it (two folders
starting at once): the server then exits, and is started again on another free port. A server that is still
running but does not answer in time is not retried: that is not a taken port, and a second one would only hide it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Starts on another free port after a taken one, this many times in all.
TRIES = 3


class DidNotStart(RuntimeError):
    """A local server did not start on its port; ``exited``: its process ended (its port taken, say) rather than
    not answering in time."""

    def __init__(self, message: str, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


def free_port() -> int:
    """A port of 127.0.0.1 that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start_on_free_port(start: Callable[[int], T], port: int | None = None, tries: int = TRIES) -> tuple[T, int]:
    """``start(port)`` on ``port`` (a free one when None), again on another free port while it raises
    ``DidNotStart`` with ``exited`` (at most ``tries`` starts in all). Returns what ``start`` returned and the port."""
    port = free_port() if port is None else port
    attempt = 1
    while True:
        try:
            return start(port), port
        except DidNotStart as exc:
            if not exc.exited or attempt >= tries:
                raise
        attempt += 1
        port = free_port()
