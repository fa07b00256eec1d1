"""The worker side: the TagMango API client and (later) the Celery app and its tasks."""
