"""The sandbox itself: its config, data, traffic counters and faults, and the gate every API request passes.

Endpoint handlers (``courses``, ``modules``, ``chapters``) and the inspection routes take a ``Sandbox``;
``app.py`` wires them to routes. This module imports none of them, so the package has no import cycle.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from importer.sandbox.answers import RATE_LIMIT_BODY, error, ok
from importer.sandbox.config import SandboxConfig
from importer.sandbox.faults import Faults
from importer.sandbox.store import Store
from importer.sandbox.traffic import Traffic


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.state_dir)
        self.traffic = Traffic()
        self.faults = Faults(config, self.traffic)
        for url in config.assets:
            if not self.store.has_asset("*", url):
                self.store.add_asset(url)

    def ok(self, entity: object) -> JSONResponse:
        return ok(self.config.envelope, entity)

    async def gate(self, request: Request) -> tuple[str | None, Response | None]:
        """Auth, host header, rate limit, stall, latency and pre-handler faults. Returns (host, early response)."""
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if token not in self.config.tokens:
            return None, error(401)
        host = request.headers.get("x-whitelabel-host", "").strip().lower()
        if not host:
            return None, error(400)
        tied = self.config.tokens[token]
        if tied is not None and tied != host:
            return None, error(401)
        if self.faults.forced_429():
            return None, JSONResponse(RATE_LIMIT_BODY, status_code=429)
        after = self.config.count_after_latency
        if not after and not self._admit(token):
            return None, JSONResponse(RATE_LIMIT_BODY, status_code=429)
        await self.faults.hold_while_stalled()
        await self.faults.latency()
        if after and not self._admit(token):
            return None, JSONResponse(RATE_LIMIT_BODY, status_code=429)
        early = await self.faults.before_handler()
        return (None, early) if early is not None else (host, None)

    def _admit(self, token: str) -> bool:
        return self.traffic.admit(token, self.config.rate_limit, self.config.rate_window_s)
