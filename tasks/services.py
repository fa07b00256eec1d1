"""What running a row needs, built once per process from ``Settings`` at the worker's edge.

The Celery task class (``tasks.row_tasks.RowTask``) builds one ``Services`` per worker process; tests build
their own against the suite's Redis and sandbox and run rows in the test process (``tasks.runner``).
"""

from __future__ import annotations

import threading

import httpx

from tasks.client import TagMangoClient
from tasks.credentials import Credential, Credentials, NoCredentials
from tasks.defaults import DEFAULT_CONNECT_TIMEOUT_S
from tasks.ledger import content_hash
from tasks.dispatch import Dispatcher
from tasks.limiter import RateLimiter, credential_key
from tasks.rowstore import RowStore
from tasks.settings import Settings


class Services:
    def __init__(self, settings: Settings, *, store: RowStore | None = None,
                 credentials: Credentials | None = None) -> None:
        self.settings = settings
        self.store = store or RowStore.from_url(settings.redis_url, settings.dead_letter_days)
        # A request whose worker died mid-flight counts until the longest a call can take (connect, write, read).
        self.limiter = RateLimiter(self.store.r, settings.rate_limit, settings.rate_window,
                                   max_flight=settings.http_read_timeout + DEFAULT_CONNECT_TIMEOUT_S + 15.0)
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

    def cred_key(self, api_url: str, host: str) -> str | None:
        """The limiter's key for a target's credential, or None when this process has no token for it."""
        try:
            cred = self.credentials.resolve(host, api_url)
        except NoCredentials:
            return None
        return credential_key(cred.api_url, cred.host, cred.token)

    def dispatcher(self) -> Dispatcher:
        """The dispatcher of parked rows (tasks.dispatch), pacing each credential as this process's limiter does."""
        return Dispatcher(self.store.r, self.settings.redis_url, self.cred_key, limit=self.settings.rate_limit,
                          window=self.settings.rate_window)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
