"""The Celery a user would write from the docs: Task.rate_limit="12/s" and autoretry. Benchmark baseline only."""

import os

import httpx
from celery import Celery

app = Celery("textbook", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_ignore_result=True,
                task_default_queue="textbook")


class Transient(Exception):
    pass


@app.task(name="textbook.create", rate_limit="12/s", autoretry_for=(Transient, httpx.TransportError),
          retry_backoff=True, max_retries=5)
def create(body: dict) -> None:
    r = httpx.post(os.environ["BENCH_API_URL"] + "/api/v1/external/courses", json=body, timeout=30,
                   headers={"Authorization": "Bearer " + os.environ["BENCH_TOKEN"],
                            "x-whitelabel-host": os.environ["BENCH_HOST"]})
    if r.status_code == 429 or r.status_code >= 500:
        raise Transient(r.status_code)
