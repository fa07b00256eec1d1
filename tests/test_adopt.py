"""Looking for a course an unanswered create may have made: the paging and matching logic (fake API pages)."""

from __future__ import annotations

import time

from tasks.adopt import find_created
from tasks.client import Page
from tasks.errors import PermanentApiError
from tasks.ledger import Ledger

BODY = {"title": "Watercolour", "mangoes": ["66c4964c11e7fef26751f3a7"], "description": "d"}


class FakeApi:
    """Pages of at most 2 items whatever ``limit`` asks (the docs give no maximum), ids as ``id``."""

    def __init__(self, courses: list[dict], empty_update_ok: bool = True) -> None:
        self.courses, self.empty_update_ok, self.calls = courses, empty_update_ok, []

    def get_courses(self, *, page: int, limit: int, mangoes: list[str]) -> Page:
        self.calls.append(("get", page))
        return Page(total=len(self.courses), items=self.courses[(page - 1) * 2: page * 2])

    def update_course(self, course_id: str, body: dict) -> dict:
        self.calls.append(("patch", course_id))
        if not self.empty_update_ok:
            raise PermanentApiError("empty body", status=400)
        course = next(c for c in self.courses if c["id"] == course_id)
        return {**course, "firstChapter": f"{course_id}-1", "secondChapter": f"{course_id}-2"}


def now_iso(offset: float = 0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + offset))


def test_finds_ours_on_a_later_page_and_skips_older_and_claimed(redis_server, redis_url):
    ledger = Ledger(redis_server.client(), "http://api", "h")
    courses = [{"id": "a", "title": "Other", "createdAt": now_iso()},
               {"id": "b", "title": "Watercolour", "createdAt": now_iso(-86400)},  # someone's older course
               {"id": "c", "title": "Watercolour", "createdAt": now_iso()},  # claimed by another row
               {"id": "d", "title": " Watercolour ", "description": "d", "createdAt": now_iso()}]
    ledger.claim("c")
    api = FakeApi(courses)
    found = find_created(api, lambda fn: fn(), BODY, ledger, time.time() - 5)
    assert found["_id"] == "d" and found["firstChapter"] == "d-1"
    assert ("get", 2) in api.calls and ledger.is_claimed("d")
    # a second row with the same title finds nothing left to adopt
    assert find_created(FakeApi(courses), lambda fn: fn(), BODY, ledger, time.time() - 5) is None


def test_refused_empty_update_still_adopts_the_listed_course(redis_server, redis_url):
    ledger = Ledger(redis_server.client(), "http://api", "h")
    found = find_created(FakeApi([{"id": "x", "title": "Watercolour"}], empty_update_ok=False), lambda fn: fn(),
                         BODY, ledger, time.time())
    assert found["_id"] == "x" and "firstChapter" not in found
