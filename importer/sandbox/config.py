"""How the sandbox behaves: who may call it, what each host may do, which faults it injects."""

from __future__ import annotations

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
    error_rate: float = 0.0
    hang_rate: float = 0.0
    #: How long a hung request hangs before it gets a 504 (longer than a client read timeout).
    hang_s: float = 40.0
    drop_rate: float = 0.0
    commit_fail_rate: float = 0.0
    seed: int | None = None
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
            "envelope": self.envelope,
            "strict_assets": self.strict_assets,
            "not_creator_hosts": sorted(self.not_creator_hosts),
            "video_disabled_hosts": sorted(self.video_disabled_hosts),
        }

    def update_faults(self, changes: dict) -> None:
        """Apply a runtime change from POST /_sandbox/config (tests and demos flip faults live)."""
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
            else:
                raise ValueError(f"unknown sandbox setting {key!r}")
