"""Worker side: the Celery app and its tasks, the TagMango client, the rate limiter, row store and ledger.

``celery -A tasks worker`` and ``celery -A tasks flower`` find the app here.
"""

from tasks.celery_app import app

from tasks import row_tasks  # noqa: E402,F401  (registers the tasks with the app)

__all__ = ["app"]
