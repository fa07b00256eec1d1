"""The Celery application. ``celery -A tasks worker`` finds it as ``tasks.app``."""

from __future__ import annotations

from celery import Celery

app = Celery("tagmango")
app.config_from_object("tasks.celeryconfig")
