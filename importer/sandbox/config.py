"""How the sandbox behaves: who may call it, what each host may do, which faults it injects."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

#: Accepted when the sandbox is started without --token; printed at start.
DEFAULT_TOKEN = "sandbox-token"
#: Mango ids every host owns (the first is the one in TagMango's curl examples).
DEFAULT_MANGOES = (
    "66c4964c11e7fef26751f3a7",
    "66c4964c11e7fef26751f3a8",
    "66c4964c11e7fef26751f3a9",
)
DEFAULT_CDN_PREFIX = "https://cdn.tagmango.com/"
CONTENT_TYPES = ("video", "audio", "image", "pdf", "file")


@dataclass
class SandboxConfig:
    #: token -> the one whitelabel host it is tied to, or None for any host.
    tokens: dict[str, str | None] = field(default_factory=lambda: {DEFAULT_TOKEN: None})
    not_creator_hosts: set[str] = field(default_factory=set)
    video_disabled_hosts: set[str] = field(default_factory=set)
    mangoes: set[str] = field(default_factory=lambda: set(DEFAULT_MANGOES))
    cdn_prefix: str = DEFAULT_CDN_PREFIX
    #: When true, a chapter's content must also be registered (POST /_sandbox/assets or --asset).
    strict_assets: bool = False
    assets: set[str] = field(default_factory=set)
    #: "bare" (as the endpoint pages show), "result" or "data" (as the overview pages say).
    envelope: str = "bare"
    rate_limit: int = 120
    rate_window_s: float = 10.0
    #: Seconds, uniform in [low, high], added to every API answer.
    latency_s: tuple[float, float] = (0.0, 0.0)
    #: False: a request is counted in the rate-limit window when it arrives (before the latency).
    #: True: it is counted after the latency (and after a stall), just before it is answered, as a
    #: TagMango that counts a request at any instant between its send and its answer may do.
    count_after_latency: bool = False
    #: A stall holds every API request that arrives during it until it ends, so a spread-out stream
    #: leaves it as one burst. Stalls last ``stall_s`` and start at ``stall_from`` (time.monotonic()),
    #: then every ``stall_every_s`` seconds if that is above 0. ``stall_from`` None: a single stall
    #: starts with the sandbox, a periodic one first ``stall_every_s`` after it.
    stall_s: float = 0.0
    stall_every_s: float = 0.0
    stall_from: float | None = None
    error_rate: float = 0.0
    hang_rate: float = 0.0
    #: How long a hung request hangs before it gets a 504 (longer than a client read timeout).
    hang_s: float = 40.0
    drop_rate: float = 0.0
    commit_fail_rate: float = 0.0
    seed: int | None = None
    #: Route ``DELETE /api/v1/external/modules/{id}``, which TagMango does not document (5.12). Off, that
    #: path answers what a server without the route answers: Starlette's plain-text 404 ``Not Found``.
    delete_module: bool = False
    #: 429s on demand: after ``refuse_after`` more API requests, the next ``refuse_count`` are answered 429 (as
    #: if another client had used the key), whatever the rate limit says. Set with POST /_sandbox/config
    #: ``{"refuse_429": {"after": K, "count": N}}``.
    refuse_after: int = 0
    refuse_count: int = 0
    #: Where the journal lives; None keeps everything in memory.
    state_dir: Path | None = None

    def fault_settings(self) -> dict:
        return {
            "latency_s": list(self.latency_s),
            "error_rate": self.error_rate,
            "hang_rate": self.hang_rate,
            "hang_s": self.hang_s,
            "drop_rate": self.drop_rate,
            "commit_fail_rate": self.commit_fail_rate,
            "rate_limit": self.rate_limit,
            "count_after_latency": self.count_after_latency,
            "stall_s": self.stall_s,
            "stall_every_s": self.stall_every_s,
            "stall_remaining_s": round(self.stall_remaining(time.monotonic()), 3),
            "envelope": self.envelope,
            "strict_assets": self.strict_assets,
            "not_creator_hosts": sorted(self.not_creator_hosts),
            "video_disabled_hosts": sorted(self.video_disabled_hosts),
            "delete_module": self.delete_module,
            "refuse_429": {"after": self.refuse_after, "count": self.refuse_count},
        }

    def stall_remaining(self, now: float) -> float:
        """Seconds until the stall in progress at ``now`` (monotonic) ends; 0 when none is."""
        if self.stall_s <= 0 or self.stall_from is None or now < self.stall_from:
            return 0.0
        elapsed = now - self.stall_from
        if self.stall_every_s > 0:
            elapsed %= self.stall_every_s
        return max(0.0, self.stall_s - elapsed)

    def set_stall(self, stall_s: float, every_s: float = 0.0, start: float | None = None) -> None:
        """Start a stall now (or at ``start``): ``stall_s`` long, repeated every ``every_s`` if above 0."""
        if stall_s < 0 or every_s < 0:
            raise ValueError("stall_s and stall_every_s are seconds, not negative")
        if every_s > 0 and stall_s >= every_s:
            raise ValueError("stall_s must be shorter than stall_every_s (or requests are never answered)")
        self.stall_s, self.stall_every_s = stall_s, every_s
        self.stall_from = time.monotonic() if start is None else start

    def update_faults(self, changes: dict) -> None:
        """Apply a runtime change from POST /_sandbox/config (tests and demos flip faults live).

        ``stall_s`` (with ``stall_every_s``, default 0 = once) starts a stall at the moment of the call;
        ``{"stall_s": 0}`` ends one early.
        """
        changes = dict(changes)
        if "stall_s" in changes or "stall_every_s" in changes:
            self.set_stall(float(changes.pop("stall_s", self.stall_s)),
                           float(changes.pop("stall_every_s", 0.0)))
        for key, value in changes.items():
            if key == "latency_s":
                self.latency_s = (float(value[0]), float(value[1]))
            elif key in {"not_creator_hosts", "video_disabled_hosts"}:
                setattr(self, key, set(value))
            elif key in {"error_rate", "hang_rate", "hang_s", "drop_rate", "commit_fail_rate"}:
                setattr(self, key, float(value))
            elif key == "rate_limit":
                self.rate_limit = int(value)
            elif key == "envelope":
                if value not in {"bare", "result", "data"}:
                    raise ValueError("envelope must be bare, result or data")
                self.envelope = value
            elif key == "strict_assets":
                self.strict_assets = bool(value)
            elif key == "count_after_latency":
                if not isinstance(value, bool):
                    raise ValueError("count_after_latency is true or false")
                self.count_after_latency = value
            elif key == "refuse_429":
                after, count = int(value.get("after", 0)), int(value.get("count", 1))
                if after < 0 or count < 0:
                    raise ValueError("refuse_429 wants after >= 0 and count >= 0")
                self.refuse_after, self.refuse_count = after, count
            elif key == "delete_module":
                if not isinstance(value, bool):
                    raise ValueError("delete_module is true or false")
                self.delete_module = value
            else:
                raise ValueError(f"unknown sandbox setting {key!r}")
