"""Reading TagMango's live catalog before an import: what exists, so nothing is created twice.

TagMango documents no "get course by id" and no way to list a course's modules or chapters, so reading uses
what it does document: Get Courses (paged, filtered by mangoes) for the courses; an empty Update Course for
one course (its ``modules`` in order), an empty Update Module for one module (its ``chapters`` in order), and
an empty Update Chapter for one chapter's fields. An empty partial update changes nothing (the sandbox counts
it as a read).

Every read goes through ``admit`` (the shared rate limiter, so a dry run and a running import of the same key
never exceed the budget together) and is retried on transient failures with tenacity; a 429 also cools the
shared limiter down. A 404 answers "not there". ``reads`` counts the requests made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from tasks import errors
from tasks.adopt import scan_courses
from tasks.client import TagMangoClient

#: Attempts per read when TagMango answers 429/5xx or times out.
READ_ATTEMPTS = 6


class LiveCatalog:
    def __init__(self, client: TagMangoClient, admit: Callable[[], None], *,
                 on_rate_limited: Callable[[float], None] | None = None,
                 progress: Callable[[int], None] | None = None, max_wait_s: float = 20.0) -> None:
        self.client, self.admit = client, admit
        self.on_rate_limited = on_rate_limited or (lambda _seconds: None)
        self.progress = progress or (lambda _reads: None)
        self.max_wait_s = max_wait_s
        self.reads = 0
        self._listings: dict[tuple[str, ...], list[dict]] = {}

    def _read(self, fn: Callable[[], Any]) -> Any:
        for attempt in Retrying(retry=retry_if_exception_type(errors.TransientApiError), reraise=True,
                                wait=wait_exponential_jitter(initial=0.5, max=self.max_wait_s),
                                stop=stop_after_attempt(READ_ATTEMPTS)):
            with attempt:
                self.admit()
                self.reads += 1
                self.progress(self.reads)
                try:
                    return fn()
                except errors.RateLimited as exc:
                    self.on_rate_limited(max(exc.retry_after or 0.0, 5.0))
                    raise
        raise AssertionError("not reached")  # pragma: no cover

    def _maybe(self, fn: Callable[[], dict]) -> dict | None:
        try:
            return self._read(fn)
        except errors.PermanentApiError as exc:
            if exc.status == 404:
                return None
            raise

    def courses(self, mangoes: list[str]) -> list[dict]:
        """Every course under any of these mangoes (id, trimmed title, description and cover fingerprints);
        one paged scan per set of mangoes per import."""
        key = tuple(sorted(mangoes))
        if key not in self._listings:
            self._listings[key] = scan_courses(self.client, lambda fn: self._read(fn), list(key), lambda: None)
        return self._listings[key]

    def course(self, course_id: str) -> dict | None:
        return self._maybe(lambda: self.client.update_course(course_id, {}))

    def module(self, module_id: str) -> dict | None:
        return self._maybe(lambda: self.client.update_module(module_id, {}))

    def chapter(self, chapter_id: str) -> dict | None:
        return self._maybe(lambda: self.client.update_chapter(chapter_id, {}))
