"""What the sandbox has seen: the per-token sliding-window limit and the counters /_sandbox/stats reports."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict, deque


def token_label(token: str) -> str:
    """A stable, non-reversible name for a token, for stats output."""
    return "tok-" + hashlib.sha256(token.encode()).hexdigest()[:10]


def is_write(method: str, raw_body: bytes) -> bool:
    """GET, and PATCH with an empty body (``{}`` or nothing), only read; POST, DELETE and other PATCHes write.

    A PATCH whose body is not JSON counts as a write: it asked for a change, even if it is refused.
    """
    if method in ("GET", "HEAD"):
        return False
    if method == "PATCH":
        if not raw_body.strip():
            return False
        try:
            return json.loads(raw_body) != {}
        except ValueError:
            return True
    return True


class Traffic:
    def __init__(self) -> None:
        self.by_status: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.by_route: Counter[str] = Counter()
        #: Every API request is a read or a write, counted when it arrives whatever it is answered.
        self.reads = 0
        self.writes = 0
        self.writes_by_route: Counter[str] = Counter()
        self.rate_limited = 0
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self.max_in_window: dict[str, int] = defaultdict(int)
        #: Admission times (monotonic-free wall clock) per token label, for rate measurements.
        self.arrivals: dict[str, list[float]] = defaultdict(list)

    def admit(self, token: str, limit: int, window_s: float) -> bool:
        """Count a request against its token's sliding window; False means answer 429.

        Requests refused with 429 are not counted in the window (the docs do not say; we
        pick the lenient reading so that a client that backs off recovers at once).
        """
        label = token_label(token)
        now = time.time()
        window = self._windows[label]
        while window and window[0] <= now - window_s:
            window.popleft()
        if len(window) >= limit:
            self.rate_limited += 1
            return False
        window.append(now)
        self.arrivals[label].append(now)
        if len(window) > self.max_in_window[label]:
            self.max_in_window[label] = len(window)
        return True

    def classify(self, route: str, write: bool) -> None:
        if write:
            self.writes += 1
            self.writes_by_route[route] += 1
        else:
            self.reads += 1

    def record(self, route: str, status: int) -> None:
        self.by_route[route] += 1
        self.by_status[status] += 1

    def reset(self) -> None:
        self.__init__()

    def snapshot(self) -> dict:
        first = min((a[0] for a in self.arrivals.values() if a), default=None)
        last = max((a[-1] for a in self.arrivals.values() if a), default=None)
        return {
            "requests": sum(self.by_status.values()),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_route": dict(self.by_route),
            "reads": self.reads,
            "writes": self.writes,
            "writes_by_route": dict(self.writes_by_route),
            "rate_limited": self.rate_limited,
            "max_in_window": max(self.max_in_window.values(), default=0),
            "max_in_window_by_token": dict(self.max_in_window),
            "admitted_by_token": {k: len(v) for k, v in self.arrivals.items()},
            "first_request_at": first,
            "last_request_at": last,
            "faults": dict(self.faults),
        }
