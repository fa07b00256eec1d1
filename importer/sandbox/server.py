"""Running the sandbox: in a background thread (tests, the demo) or in the foreground (CLI)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import httpx
import uvicorn

from importer.sandbox.app import build_app
from importer.sandbox.config import SandboxConfig


@dataclass
class RunningSandbox:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    app: object

    @property
    def sandbox(self):  # noqa: ANN201 - the in-process Sandbox, for tests
        return self.app.state.sandbox

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_sandbox/stats", timeout=10).json()

    def configure(self, **changes: object) -> dict:
        return httpx.post(f"{self.url}/_sandbox/config", json=changes, timeout=10).json()

    def data(self, host: str | None = None) -> dict:
        params = {"host": host} if host else {}
        return httpx.get(f"{self.url}/_sandbox/data", params=params, timeout=30).json()

    def tree(self, host: str) -> list[dict]:
        """The host's courses as trees (``GET /_sandbox/tree``): modules and chapters in order."""
        return httpx.get(f"{self.url}/_sandbox/tree", params={"host": host}, timeout=30).json()["courses"]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sandbox.store.close()


#: On stop, requests still in flight get this long: an injected hang (a fault) otherwise holds the shutdown until
#: it ends (a test's sandbox took 10 s to stop).
GRACEFUL_SHUTDOWN_S = 1.0


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections accepted from a socket that says TCP. Without
    # it uvicorn's answer (head, then body) waited for the client's delayed ACK: 40 ms per kept-alive request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock


def serve_in_thread(config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                    log_level: str = "warning") -> RunningSandbox:
    """Start the sandbox on ``host:port`` (0 = a free port) and return once it answers."""
    app = build_app(config)
    sock = bind_socket(host, port)
    actual_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, timeout_keep_alive=30,
                                           timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="sandbox")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the sandbox did not start")
        time.sleep(0.02)
    return RunningSandbox(url=f"http://{host}:{actual_port}", server=server, thread=thread, app=app)


def serve_forever(config: SandboxConfig, host: str, port: int, log_level: str = "warning",
                  on_ready=None) -> None:  # noqa: ANN001
    """Run in the foreground until interrupted (the ``tagmango-import sandbox`` command)."""
    app = build_app(config)
    sock = bind_socket(host, port)
    if on_ready is not None:
        on_ready(f"http://{host}:{sock.getsockname()[1]}")
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False,
                                           timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        app.state.sandbox.store.close()
