"""Worker side: the TagMango operations, the client, the rate limiter, the row store and ledger, and the Celery
tasks that run rows.

``celery -A tasks worker`` and ``celery -A tasks flower`` find the app as ``tasks.app``; it is loaded only
when asked for, so ``import tasks.ledger`` (or the limiter, the client, the errors) does not import Celery.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from tasks.celery_app import app

        return app
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")
