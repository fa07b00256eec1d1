"""Finding a course that an earlier, unanswered Create Course may have made (Create Course is not idempotent).

Before re-sending a create that may have reached TagMango (a timeout, a dropped connection, a 5xx, a
worker killed mid-call), the worker looks for it: Get Courses filtered by the row's mangoes, every page,
matching the title; courses another row already owns (the ledger's claimed set) are never candidates.
Get Courses does not return ``createdAt`` or the chapter ids, so each candidate is read back with an
empty Update Course, which returns the full course; a candidate created well before our first attempt is
someone else's course with the same title and is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tasks.client import TagMangoClient
from tasks.errors import PermanentApiError
from tasks.ledger import Ledger

PAGE_SIZE = 100
MAX_PAGES = 500
#: Tolerated clock difference between us and TagMango when comparing createdAt with our first attempt.
CLOCK_SKEW_S = 300.0


def _created_at(course: dict) -> float | None:
    value = course.get("createdAt")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def find_created(client: TagMangoClient, call: Callable[[Callable[[], Any]], Any], body: dict, ledger: Ledger,
                 first_sent_at: float) -> dict | None:
    """The full course our earlier create made, claimed for this row; None if there is none.

    ``call`` runs one API call under the rate limiter.
    """
    title = body["title"].strip()
    candidates: list[dict] = []
    seen, page = 0, 1
    while page <= MAX_PAGES:
        result = call(lambda p=page: client.get_courses(page=p, limit=PAGE_SIZE, mangoes=body["mangoes"]))
        for course in result.items:
            course_id = course.get("_id") or course.get("id")
            if str(course.get("title", "")).strip() == title and course_id and not ledger.is_claimed(course_id):
                candidates.append({**course, "_id": course_id})
        seen += len(result.items)
        if not result.items or seen >= result.total:
            break
        page += 1
    # Same description first: two rows may share a title.
    candidates.sort(key=lambda c: (c.get("description") != body.get("description"),
                                   c.get("coverImage") != body.get("coverImage")))
    for course in candidates:
        try:
            full = call(lambda c=course: client.update_course(c["_id"], {}))
        except PermanentApiError:
            full = course  # an empty update refused: adopt what Get Courses showed (no chapter ids, no createdAt)
        full = {**full, "_id": full.get("_id") or full.get("id") or course["_id"]}
        created = _created_at(full)
        if created is not None and created < first_sent_at - CLOCK_SKEW_S:
            continue
        if ledger.claim(course["_id"]):
            return full
    return None
