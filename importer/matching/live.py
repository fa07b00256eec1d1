"""Reading TagMango's live catalog before an import: what exists, so nothing is created twice.

TagMango documents no "get course by id" and no way to list a course's modules or chapters, so reading uses
what it does document: Get Courses (paged, filtered by mangoes) for the courses; an empty Update Course for
one course (its ``modules`` in order), an empty Update Module for one module (its ``chapters`` in order), and
an empty Update Chapter for one chapter's fields. An empty partial update changes nothing (the sandbox counts
it as a read).

Every read goes through the credential's door (``tasks.gateway``): the shared rate limit (a dry run and a
running import of the same key never exceed the budget together), retries of transient failures, a 429
waited out. A 404 answers "not there". ``reads`` counts the requests made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tasks import errors
from tasks.adopt import by_title, scan_courses
from tasks.gateway import Door, OnNotice, OnWait


class LiveCatalog:
    def __init__(self, door: Door, *, progress: Callable[[int], None] | None = None,
                 on_wait: OnWait | None = None, on_notice: OnNotice | None = None) -> None:
        self.door = door
        self.progress = progress or (lambda _reads: None)
        self.on_wait, self.on_notice = on_wait, on_notice
        self.reads = 0
        self._count = threading.Lock()  # reads may go out from several threads (the export)
        self._listings: dict[tuple[str, ...], list[dict]] = {}
        self._titles: dict[tuple[str, ...], dict[str, list[dict]]] = {}

    def _read(self, fn: Callable[[Any], Any]) -> Any:
        with self._count:
            self.reads += 1
            reads = self.reads
        self.progress(reads)
        return self.door.read(fn, on_wait=self.on_wait, on_notice=self.on_notice)

    def _maybe(self, fn: Callable[[Any], dict]) -> dict | None:
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
            self._listings[key] = scan_courses(self._read, list(key))
        return self._listings[key]

    def titled(self, mangoes: list[str], title: str) -> list[dict]:
        """The courses of ``courses(mangoes)`` titled ``title`` (trimmed), in listing order."""
        key = tuple(sorted(mangoes))
        if key not in self._titles:
            self._titles[key] = by_title(self.courses(list(key)))
        return self._titles[key].get(title.strip(), [])

    def course(self, course_id: str) -> dict | None:
        return self._maybe(lambda api: api.update_course(course_id, {}))

    def module(self, module_id: str) -> dict | None:
        return self._maybe(lambda api: api.update_module(module_id, {}))

    def chapter(self, chapter_id: str) -> dict | None:
        return self._maybe(lambda api: api.update_chapter(chapter_id, {}))
