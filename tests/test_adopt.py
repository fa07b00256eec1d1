"""Looking for a course an unanswered create may have made: the paging and matching logic (fake API pages)."""

from __future__ import annotations

import threading
import time

import pytest

from tasks.adopt import Listings, find_created
from tasks.client import Page
from tasks.errors import PermanentApiError
from tasks.ledger import Ledger

BODY = {"title": "Watercolour", "mangoes": ["66c4964c11e7fef26751f3a7"], "description": "d"}


class FakeApi:
    """Pages of at most 2 items whatever ``limit`` asks (the docs give no maximum), ids as ``id``."""

    def __init__(self, courses: list[dict], empty_update_ok: bool = True, update_status: int = 400) -> None:
        self.courses, self.empty_update_ok, self.update_status, self.calls = courses, empty_update_ok, update_status, []

    def get_courses(self, *, page: int, limit: int, mangoes: list[str]) -> Page:
        self.calls.append(("get", page))
        return Page(total=len(self.courses), items=self.courses[(page - 1) * 2: page * 2])

    def update_course(self, course_id: str, body: dict) -> dict:
        self.calls.append(("patch", course_id))
        if not self.empty_update_ok:
            raise PermanentApiError("refused", status=self.update_status)
        course = next(c for c in self.courses if c["id"] == course_id)
        return {**course, "firstChapter": f"{course_id}-1", "secondChapter": f"{course_id}-2"}


def _via(api: FakeApi):
    return lambda fn: fn(api)


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
    found = find_created(_via(api), BODY, ledger, time.time() - 5)
    assert found["_id"] == "d" and found["firstChapter"] == "d-1"
    assert ("get", 2) in api.calls and ledger.is_claimed("d")
    # a second row with the same title finds nothing left to adopt
    assert find_created(_via(FakeApi(courses)), BODY, ledger, time.time() - 5) is None


def test_refused_empty_update_still_adopts_the_listed_course(redis_server, redis_url):
    ledger = Ledger(redis_server.client(), "http://api", "h")
    found = find_created(_via(FakeApi([{"id": "x", "title": "Watercolour"}], empty_update_ok=False)),
                         BODY, ledger, time.time())
    assert found["_id"] == "x" and "firstChapter" not in found


def test_a_course_whose_read_back_is_404_is_never_adopted(redis_server, redis_url):
    ledger = Ledger(redis_server.client(), "http://api", "h")
    api = FakeApi([{"id": "x", "title": "Watercolour"}], empty_update_ok=False, update_status=404)
    assert find_created(_via(api), BODY, ledger, time.time()) is None
    assert not ledger.is_claimed("x")


def test_a_refused_credential_during_the_read_back_fails_the_attempt(redis_server, redis_url):
    ledger = Ledger(redis_server.client(), "http://api", "h")
    api = FakeApi([{"id": "x", "title": "Watercolour"}], empty_update_ok=False, update_status=401)
    with pytest.raises(PermanentApiError):
        find_created(_via(api), BODY, ledger, time.time())
    assert not ledger.is_claimed("x")


def test_rows_looking_at_the_same_time_share_one_scan(redis_server, redis_url):
    """A row may use a scan that started after it began looking; rows arriving during a scan share the next."""
    client = redis_server.client()
    scans: list[int] = []
    first_started, others_waiting = threading.Event(), threading.Event()

    def scan(keepalive):
        scans.append(len(scans) + 1)
        if len(scans) == 1:
            first_started.set()
            assert others_waiting.wait(10)  # the other rows began looking while this scan ran
        keepalive()
        return [{"_id": f"c{len(scans)}", "title": "Watercolour", "d": "", "c": None}]

    results: list[list[dict]] = []
    clock_read = threading.Semaphore(0)

    class Watched(Listings):
        """Says when a row has read the clock (the moment after which it needs a scan to have started)."""

        def now(self) -> float:
            t = super().now()
            clock_read.release()
            return t

    def row(listings: Listings) -> None:
        results.append(listings.fresh(BODY["mangoes"], scan))

    first = threading.Thread(target=row, args=(Listings(client, "cred", poll_s=0.02),))
    first.start()
    assert first_started.wait(10)
    later = [threading.Thread(target=row, args=(Watched(client, "cred", poll_s=0.02),)) for _ in range(3)]
    for t in later:
        t.start()
    for _ in later:  # every later row has read the clock while the first scan runs
        assert clock_read.acquire(timeout=10)
    others_waiting.set()
    for t in [first, *later]:
        t.join()
    assert len(scans) == 2  # not 4
    assert sorted(r[0]["_id"] for r in results) == ["c1", "c2", "c2", "c2"]
    # A row that starts looking after the last scan finished does not reuse it: it could miss a newer course.
    assert Listings(client, "cred").fresh(BODY["mangoes"], scan)[0]["_id"] == "c3"
    # Another set of mangoes is another listing.
    assert Listings(client, "cred").fresh(["0" * 24], scan)[0]["_id"] == "c4"


def test_find_created_through_a_shared_listing(redis_server, redis_url):
    ledger = Ledger(redis_server.client(), "http://api", "h")
    api = FakeApi([{"id": "a", "title": "Other"}, {"id": "d", "title": "Watercolour", "description": "d",
                                                   "createdAt": now_iso()}])
    found = find_created(_via(api), BODY, ledger, time.time() - 5, Listings(redis_server.client(), "k"))
    assert found["_id"] == "d" and found["firstChapter"] == "d-1"


class Faulty(FakeApi):
    """Fails the listed reads once each, as a TagMango under load does now and then."""

    def __init__(self, courses: list[dict], faults: dict[tuple, Exception]) -> None:
        super().__init__(courses)
        self.faults = faults

    def get_courses(self, *, page: int, limit: int, mangoes: list[str]) -> Page:
        fault = self.faults.pop(("get", page), None)
        if fault is not None:
            self.calls.append(("fault", page))
            raise fault
        return super().get_courses(page=page, limit=limit, mangoes=mangoes)


def test_a_page_that_fails_on_the_way_is_read_again_not_the_whole_attempt(redis_server, redis_url):
    """A scan is many pages: a 5xx, a timeout or a dropped connection on one page is read again (up to three
    tries), so it does not cost the row an attempt; a 429 is not (the row waits it out as any other), and a page
    failing three times fails the attempt."""
    from tasks.errors import ApiTimeout, RateLimited, ServerError

    ledger = Ledger(redis_server.client(), "http://api", "h")
    courses = [{"id": "a", "title": "Other"}, {"id": "b", "title": "Other"}, {"id": "d", "title": "Watercolour"}]
    api = Faulty(courses, {("get", 2): ServerError("Something went wrong", status=502)})
    assert find_created(_via(api), BODY, ledger, time.time() - 5)["_id"] == "d"
    assert api.calls[:4] == [("get", 1), ("fault", 2), ("get", 2), ("patch", "d")]
    with pytest.raises(RateLimited):
        find_created(_via(Faulty(courses, {("get", 1): RateLimited("slow down")})), BODY, ledger, time.time())

    class Always(FakeApi):
        def get_courses(self, *, page: int, limit: int, mangoes: list[str]) -> Page:
            self.calls.append(("fault", page))
            raise ApiTimeout("timed out")

    always = Always(courses)
    with pytest.raises(ApiTimeout):
        find_created(_via(always), BODY, ledger, time.time())
    assert always.calls == [("fault", 1)] * 3


def test_a_title_index_finds_what_a_pass_over_the_listing_finds():
    import random

    from tasks.adopt import by_title, same_title

    rng = random.Random(7)
    listed = [{"_id": f"c{i}", "title": rng.choice(["A", "B", "C", "A B"]), "d": rng.choice(["x", "y"]),
               "c": rng.choice([None, "cover"])} for i in range(200)]
    index = by_title(listed)
    assert sum(len(v) for v in index.values()) == len(listed)
    claimed = {f"c{i}" for i in range(0, 200, 3)}
    for title in ("A", " B ", "C", "A B", "D"):
        body = {"title": title, "description": "x", "coverImage": "cover"}
        whole = same_title(listed, body, claimed.__contains__)
        assert same_title(index.get(title.strip(), []), body, claimed.__contains__) == whole
        assert all(c["title"] == title.strip() for c in whole)


def test_the_live_catalog_scans_once_and_looks_titles_up():
    from importer.matching.live import LiveCatalog

    api = FakeApi([{"id": "a", "title": " Watercolour "}, {"id": "b", "title": "Oils"},
                   {"id": "c", "title": "Watercolour"}])

    class Door:
        def read(self, fn, on_wait=None, on_notice=None):
            return fn(api)

    catalog = LiveCatalog(Door())
    assert [c["_id"] for c in catalog.titled(["m"], " Watercolour")] == ["a", "c"]
    assert [c["_id"] for c in catalog.titled(["m"], "Oils")] == ["b"] and catalog.titled(["m"], "Ink") == []
    assert catalog.reads == 2  # one scan of two pages, shared by every look-up
    assert [c["_id"] for c in catalog.courses(["m"])] == ["a", "b", "c"]
