"""Celery settings shared by the worker, Flower and docker-compose (``celery -A tasks ...``).

Each setting says why it is set; see ../shared/reference/celery-pitfalls.md for the failure it prevents.
"""

from __future__ import annotations

from tasks.defaults import QUEUE, WORKER_POOL
from tasks.settings import current

#: Not a Celery setting: this process's Settings, read once (the worker's services use the same reading).
settings = current()

broker_url = settings.redis_url
# kombu's Redis transport with a fix that keeps workers alive through a Redis restart (see tasks/broker.py).
broker_transport = "tasks.broker:Transport" if broker_url.split("://")[0] in ("redis", "rediss") else None
result_backend = settings.redis_url
# Redis redelivers an unacked message after the visibility timeout; every countdown we schedule
# (backoff_max, limiter deferrals) stays far below it, and a stale redelivery is dropped by the row's
# generation check. The same value for the result backend, as the Redis caveats page asks.
# kombu sweeps for messages of dead workers only every ~100 s by default; every 10 s here, up to 200
# messages per sweep, so a killed worker's rows come back soon after the visibility timeout.
broker_transport_options = {"visibility_timeout": settings.visibility_timeout, "unacked_restore_interval": 10,
                            "unacked_restore_throttle": 1, "unacked_restore_limit": 200}
result_backend_transport_options = {"visibility_timeout": settings.visibility_timeout}
broker_connection_retry_on_startup = True

# Ack only after the task body has run, and put the message back when the worker process dies
# (SIGKILL, OOM): a killed worker loses no row. Poison rows are cut off by max_deliveries.
task_acks_late = True
task_reject_on_worker_lost = True
# One reserved message per slot: a slow or dead worker does not sit on rows others could run.
worker_prefetch_multiplier = 1
# Retries use countdowns, which Celery holds in worker memory; bound them (a 429 storm must not
# turn into an out-of-memory loop).
worker_eta_task_limit = settings.eta_task_limit
# On a warm shutdown (deploy, Ctrl-C) give running calls time to finish and hand the rest back
# to the broker at once instead of after the visibility timeout.
worker_soft_shutdown_timeout = 30.0
worker_enable_soft_shutdown_on_idle = True
# Flower sees only events: task events from workers (received, started, succeeded/failed/retried). No
# "sent" events: rows wait parked in Redis (tasks/park.py) and a message is sent only when its slot has
# come, a few ms before a worker receives it, so a sent event would show nothing the received one does not,
# and cost a publish per row.
worker_send_task_events = True
task_send_sent_event = False
task_track_started = True
# API calls are I/O: a threads pool (tasks.defaults.WORKER_POOL; it measured less CPU per request than gevent,
# whose pool Celery runs without the event loop that batches task events); concurrency high enough that the rate
# limit, not latency, is the bottleneck (each key needs about 3 rows in flight at 50-400 ms; 16 keys about 45).
worker_pool = WORKER_POOL
worker_concurrency = settings.worker_concurrency
task_default_queue = QUEUE
task_routes = {"tagmango.*": {"queue": QUEUE}}
task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"
# The row records in Redis are the results (states, ids, errors); Flower gets each task's outcome from
# events. Only the requeue task (triggered through Flower's API) stores its result, for a day.
task_ignore_result = True
result_expires = 24 * 3600
worker_hijack_root_logger = False
worker_redirect_stdouts = False
