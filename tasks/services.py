"""What running a row needs, built once per process from ``Settings`` at the worker's edge.

The Celery task class (``tasks.row_tasks.RowTask``) builds one ``Services`` per worker process; tests build
their own against the suite's Redis and sandbox and run rows in the test process (``tasks.runner``).
"""

from __future__ import annotations

import threading

import httpx

from tasks.client import TagMangoClient
from tasks.credentials import Credential, Credentials
from tasks.defaults import DEFAULT_CONNECT_TIMEOUT_S
from tasks.ledger import content_hash
from tasks.limiter import RateLimiter
from tasks.rowstore import RowStore
from tasks.settings import Settings


class Services:
    def __init__(self, settings: Settings, *, store: RowStore | None = None,
                 credentials: Credentials | None = None) -> None:
        self.settings = settings
        self.store = store or RowStore.from_url(settings.redis_url, settings.dead_letter_days)
        self.limiter = RateLimiter(self.store.r, settings.rate_limit, settings.rate_window)
        self.credentials = credentials if credentials is not None else Credentials.from_env()
        self._clients: dict[tuple, TagMangoClient] = {}
        self._lock = threading.Lock()

    def client(self, cred: Credential) -> TagMangoClient:
        """One pooled HTTP client per credential, shared by the process's threads."""
        key = (cred.api_url, cred.host, content_hash({"t": cred.token}))
        with self._lock:
            if key not in self._clients:
                timeout = httpx.Timeout(connect=DEFAULT_CONNECT_TIMEOUT_S, read=self.settings.http_read_timeout,
                                        write=10.0, pool=10.0)
                self._clients[key] = TagMangoClient(cred.api_url, cred.token, cred.host, timeout=timeout)
            return self._clients[key]

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
