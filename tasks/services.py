"""What running a row needs, built once per process from ``Settings`` at the worker's edge.

A worker builds one ``Services`` per process (``tasks.row_tasks.worker_services``); tests build their own against
the suite's Redis and sandbox (the ``services`` fixture) and run rows in the test process (``tasks.runner``).
One Redis connection pool serves the row store and every module that owns keys beside it (park, ledger,
listings, limiter, timeline): they are handed ``redis``, nobody reaches into the store for it.
"""

from __future__ import annotations

from tasks.credentials import Credentials, NoCredentials
from tasks.dispatch import Dispatcher, Publisher
from tasks.gateway import Gateway
from tasks.limiter import credential_key
from tasks.rowstore import RowStore, connect
from tasks.settings import Settings


class Services:
    def __init__(self, settings: Settings, *, credentials: Credentials | None = None) -> None:
        self.settings = settings
        self.redis = connect(settings.redis_url)
        self.store = RowStore(self.redis, settings.dead_letter_days, settings.redis_url)
        #: The one door to TagMango (client, limiter, retries) for every credential this process sends with.
        self.gateway = Gateway.from_settings(self.redis, settings)
        self.credentials = credentials if credentials is not None else Credentials.from_env()

    def cred_key(self, api_url: str, host: str) -> str | None:
        """The limiter's key for a target's credential, or None when this process has no token for it."""
        try:
            cred = self.credentials.resolve(host, api_url)
        except NoCredentials:
            return None
        return credential_key(cred.api_url, cred.host, cred.token)

    def dispatcher(self, publisher: Publisher | None = None) -> Dispatcher:
        """The dispatcher of parked rows (tasks.dispatch), pacing each credential as this process's limiter does;
        ``publisher`` is what its thread publishes with (without one, tick it by hand)."""
        return Dispatcher(self.store, self.cred_key, limit=self.settings.rate_limit, window=self.settings.rate_window,
                          publisher=publisher)

    def close(self) -> None:
        self.gateway.close()
