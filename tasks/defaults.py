"""Default values of every setting, with their units in their names.

Only ``tasks.settings.Settings.from_env`` (and the command line) read the environment; everything else takes
these values through a ``Settings``.
"""

#: TagMango's production API.
DEFAULT_API_URL = "https://api-prod-new.tagmango.com"
#: Where a worker looks for Redis when nothing is configured (the command line starts an embedded one instead).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The Celery queue of the row tasks.
QUEUE = "tagmango"

#: Requests per window the limiter allows per credential: TagMango's documented 120 per 10 s, with each
#: request counted for its whole flight (tasks.limiter), so no margin below it is needed.
DEFAULT_RATE_LIMIT = 120
DEFAULT_RATE_WINDOW_S = 10.0
#: Attempts per row per round (first call + retries) before RETRIES_EXHAUSTED.
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_BACKOFF_BASE_S = 2.0
DEFAULT_BACKOFF_MAX_S = 120.0
#: Redis redelivers an unacknowledged message after this long; far above every countdown we schedule.
DEFAULT_VISIBILITY_TIMEOUT_S = 600.0
#: Read timeout of one TagMango call (connect is 5 s).
DEFAULT_HTTP_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
#: How long jobs, rows and dead letters are kept in Redis.
DEFAULT_DEAD_LETTER_DAYS = 30.0
#: Deliveries of one task message that never finished before the row is dead (WORKER_LOST).
DEFAULT_MAX_DELIVERIES = 5
#: Longest limiter wait spent sleeping in a task; longer waits park the row in Redis until then.
DEFAULT_MAX_LIMITER_SLEEP_S = 0.5
#: An active row idle this long whose message is in neither the queue nor ``unacked`` gets a fresh message.
DEFAULT_RECOVERY_IDLE_S = 90.0
#: Celery's pool for the row tasks (``--pool``): they wait on TagMango and Redis, not on the CPU.
WORKER_POOL = "threads"
#: Rows in flight per worker (threads). A creator's key needs about 3 at 12 requests/s and 50-400 ms per request:
#: 16 keys need about 45, more when TagMango is slow. Two workers of 8 held 16 keys to 35% of their rate; 64 let one
#: worker serve 16 keys, at the same CPU per request as 32 (measured against gevent: README, Performance).
DEFAULT_WORKER_CONCURRENCY = 64
#: Countdown (ETA) messages a worker may hold in memory.
DEFAULT_ETA_TASK_LIMIT = 1000
