"""kombu's Redis transport with two fixes: a worker must survive a Redis restart, and must not build a Redis
client object for every message it publishes.

With kombu 5.7, when the broker connection drops while a worker holds messages (tasks waiting for their
countdown, which this importer always has: rows deferred for the rate limiter, retries), the consumer
closes the connection and the old channel then needs Redis once more: to put the held messages back on
the queue, and to acknowledge tasks that were still running and finish afterwards. By then the channel
has lost its connection settings (``AttributeError: 'NoneType' object has no attribute 'hostname'`` /
``... 'client'``), Celery calls that an "Unrecoverable error", and the worker process exits: every worker
at once, on every Redis restart or failover.

Here a channel remembers the connection settings it last used, so those late calls reach Redis with a
fresh connection pool. If Redis is still down, the call fails with a connection error, which kombu and
Celery handle (log and carry on), and the messages stay in kombu's ``unacked`` hash until the
visibility-timeout sweep restores them. Rows run at most once more for that; their generation, lease and
ledger checks make the extra copy harmless. Selected in ``tasks.celeryconfig`` (``broker_transport``);
tested in ``tests/test_pipeline.py::test_workers_survive_a_redis_restart``.

kombu 5.7 also creates a new ``redis.Redis`` for each message published, each event sent and each ack
(``conn_or_acquire``), and redis-py 7 builds its table of response callbacks anew for each one: about a
tenth of a busy worker's CPU (py-spy, ``python -m tests.bench.run --only profile``). A ``redis.Redis`` is
only a handle on the channel's connection pool and is thread-safe, so one per pool is kept and reused;
a new pool (after a disconnect) gets a new one.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _last_params: dict | None = None
    _sync_client: tuple | None = None  # (pool, redis.Redis on it)

    def _create_client(self, asynchronous: bool = False):  # noqa: ANN202 - kombu's signature
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        cached = self._sync_client
        if cached is not None and cached[0] is pool:
            return cached[1]
        client = super()._create_client(asynchronous=False)
        self._sync_client = (pool, client)
        return client

    def _connparams(self, asynchronous: bool = False) -> dict:
        if getattr(self.connection, "client", None) is None and self._last_params is not None:
            # The connection is gone (closed after an error); reach the same Redis with the same settings.
            return dict(self._last_params)
        params = super()._connparams(asynchronous=asynchronous)
        if not asynchronous:
            self._last_params = dict(params)
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
