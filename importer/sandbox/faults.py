"""Injected faults: latency, stalls, 5xx, hangs, dropped connections, and creates that commit but fail."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from starlette.responses import Response

from importer.sandbox.answers import error
from importer.sandbox.config import SandboxConfig
from importer.sandbox.traffic import Traffic

#: A held request re-reads the stall schedule at least this often, so ending a stall early releases it.
_STALL_POLL_S = 0.25


async def hang(seconds: float) -> None:
    """A hung request's wait (its 504 comes after it). Cut short when the sandbox stops (the server cancels what is
    still in flight after ``server.GRACEFUL_SHUTDOWN_S``): the request then gets its 504 at once, instead of ending
    as an error in the sandbox's log."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(seconds)


class DroppedResponse(Response):
    """Starts a response and closes the connection mid-body: the client sees a dropped connection."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI signature
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"_id": "', "more_body": True})
        # Returning here leaves the body incomplete; uvicorn closes the connection.


class Faults:
    def __init__(self, config: SandboxConfig, traffic: Traffic) -> None:
        self.config = config
        self.traffic = traffic
        self.rng = random.Random(config.seed)
        if config.stall_s > 0 and config.stall_from is None:
            # Given at start: a single stall begins now; a periodic one first after one period.
            config.set_stall(config.stall_s, config.stall_every_s, time.monotonic() + config.stall_every_s)

    def forced_429(self) -> bool:
        """A 429 asked for (``refuse_429``): counted with the rate limit's own."""
        if self.config.refuse_count <= 0:
            return False
        if self.config.refuse_after > 0:
            self.config.refuse_after -= 1
            return False
        self.config.refuse_count -= 1
        self.traffic.rate_limited += 1
        return True

    async def hold_while_stalled(self) -> None:
        """Hold a request that arrived during a stall until the stall ends (all of them leave together)."""
        held = False
        while (remaining := self.config.stall_remaining(time.monotonic())) > 0:
            if not held:
                self.traffic.faults["stalled"] += 1
                held = True
            await asyncio.sleep(min(remaining, _STALL_POLL_S))

    async def latency(self) -> None:
        low, high = self.config.latency_s
        if high > 0:
            await asyncio.sleep(self.rng.uniform(low, high))

    async def before_handler(self) -> Response | None:
        """A hang (then 504), a dropped connection or a 5xx instead of the endpoint, or None."""
        c = self.config
        roll = self.rng.random()
        if roll < c.hang_rate:
            self.traffic.faults["hang"] += 1
            await hang(c.hang_s)
            return error(504, message="Gateway Timeout")
        roll -= c.hang_rate
        if roll < c.drop_rate:
            self.traffic.faults["drop"] += 1
            return DroppedResponse()
        roll -= c.drop_rate
        if roll < c.error_rate:
            self.traffic.faults["error"] += 1
            status = self.rng.choice([500, 502, 503])
            return error(status, message="Something went wrong")
        return None

    async def committed_failure(self) -> Response | None:
        """After a successful create: sometimes fail the answer although the object exists."""
        if self.rng.random() < self.config.commit_fail_rate:
            self.traffic.faults["commit_fail"] += 1
            if self.rng.random() < 0.5:
                return error(502, message="Bad Gateway")
            await hang(self.config.hang_s)
            return error(504, message="Gateway Timeout")
        return None
