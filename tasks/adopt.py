"""Finding a course that an earlier, unanswered Create Course may have made (Create Course is not idempotent).

Before re-sending a create that may have reached TagMango (a timeout, a dropped connection, a 5xx, a
worker killed mid-call), the worker looks for it: Get Courses filtered by the row's mangoes, every page,
matching the title; courses another row already owns (the ledger's claimed set) are never candidates.
Get Courses does not return ``createdAt`` or the chapter ids, so each candidate is read back with an
empty Update Course, which returns the full course; a candidate created well before our first attempt is
someone else's course with the same title and is left alone. A read-back answered 404 means the course is
gone or not this creator's (never adopted); a 401/403 is the credential's problem and fails the attempt; only
an empty update refused as invalid (400) falls back to what Get Courses showed.

Listing every page costs one request per 100 courses, under the same rate limit as the import. When many
rows need a lookup at once (a killed worker, a burst of 5xx), ``Listings`` lets them share one scan: a
row may use a listing whose scan *started after the row began looking*, so it cannot miss a course
committed before then, and while one row scans, the others wait for its result instead of scanning too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis
from redis.exceptions import LockError
from redis.lock import Lock
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from tasks.client import TagMangoClient
from tasks.errors import PermanentApiError, RateLimited, TransientApiError
from tasks.ledger import Ledger

PAGE_SIZE = 100
MAX_PAGES = 500
#: Tolerated clock difference between us and TagMango when comparing createdAt with our first attempt.
CLOCK_SKEW_S = 300.0

Scan = Callable[[Callable[[], None]], list[dict]]  # takes a keep-alive to call after each page
#: Makes one request through the credential's door: ``call(lambda api: api.get_courses(...))`` (tasks.gateway).
Caller = Callable[[Callable[[TagMangoClient], Any]], Any]


def _created_at(course: dict) -> float | None:
    value = course.get("createdAt")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def fingerprint(text: object) -> str:
    """A short hash of a description (listings keep these, not the text)."""
    return hashlib.sha256(str(text or "").encode()).hexdigest()[:16]


class Listings:
    """Get Courses scans shared through Redis, per credential and set of mangoes.

    Keys: ``tm:listing:{cred}:{mangoes hash}`` (the last scan: its start in Redis time and, per course, id,
    title and fingerprints of description and cover, so that 10,000 courses stay around a megabyte) and
    ``...:lock`` (the row scanning now, kept alive page by page).
    """

    #: Renewed after every page: a scanner that died holds the others up this long at most.
    LOCK_TTL_S = 15.0
    KEEP_S = 900

    def __init__(self, client: redis.Redis, cred_key: str, wait_s: float = 600.0, poll_s: float = 0.25) -> None:
        self.r, self.cred, self.wait_s, self.poll_s = client, cred_key, wait_s, poll_s

    def _key(self, mangoes: list[str]) -> str:
        return f"tm:listing:{self.cred}:{fingerprint(','.join(sorted(mangoes)))}"

    def now(self) -> float:
        sec, usec = self.r.time()
        return sec + usec / 1e6

    def fresh(self, mangoes: list[str], scan: Scan) -> list[dict]:
        """Courses from a scan that started after this call: the latest shared one, or our own."""
        need_after = self.now()
        key = self._key(mangoes)
        lock = self.r.lock(key + ":lock", timeout=self.LOCK_TTL_S, blocking=False, thread_local=False)
        deadline = time.monotonic() + self.wait_s
        while True:
            found = self._since(key, need_after)
            if found is not None:
                return found
            if lock.acquire():
                try:
                    found = self._since(key, need_after)  # a scan that ended between the look and the lock
                    if found is not None:
                        return found
                    started_at = self.now()
                    courses = scan(lambda: _keep(lock, self.LOCK_TTL_S))
                    self.r.set(key, json.dumps({"started_at": started_at, "courses": courses}), ex=self.KEEP_S)
                    return courses
                finally:
                    try:
                        lock.release()
                    except LockError:  # it expired (a scan slower than the lock): another row may scan now
                        pass
            if time.monotonic() > deadline:  # the scanning row is stuck: do not wait for ever
                return scan(lambda: None)
            time.sleep(self.poll_s)


    def _since(self, key: str, need_after: float) -> list[dict] | None:
        """The courses of the last scan if it started at ``need_after`` or later."""
        raw = self.r.get(key)
        listing = json.loads(raw) if raw else None
        return listing["courses"] if listing and listing["started_at"] >= need_after else None


def _keep(lock: Lock, seconds: float) -> None:
    """Keep a lock alive; one that already expired is left to whoever holds it now."""
    try:
        lock.extend(seconds, replace_ttl=True)
    except LockError:
        pass


def scan_courses(call: Caller, mangoes: list[str], keepalive: Callable[[], None] = lambda: None) -> list[dict]:
    """Every course under any of ``mangoes`` (Get Courses, every page): id, trimmed title, fingerprints."""
    courses: list[dict] = []
    seen, page = 0, 1
    while page <= MAX_PAGES:
        result = call(lambda api, p=page: api.get_courses(page=p, limit=PAGE_SIZE, mangoes=mangoes))
        keepalive()
        for course in result.items:
            course_id = course.get("_id") or course.get("id")
            if course_id:
                courses.append({"_id": course_id, "title": str(course.get("title", "")).strip(),
                                "d": fingerprint(course.get("description")), "c": course.get("coverImage")})
        seen += len(result.items)
        if not result.items or seen >= result.total:
            break
        page += 1
    return courses


def by_title(listed: list[dict]) -> dict[str, list[dict]]:
    """A listing's courses by their (trimmed) title, each title's in listing order: matching a file's rows
    looks each row's title up once instead of passing over the whole listing (10,000 rows against a creator's
    10,000 courses were 10^8 comparisons)."""
    index: dict[str, list[dict]] = {}
    for course in listed:
        index.setdefault(course["title"], []).append(course)
    return index


def same_title(listed: list[dict], body: dict, is_claimed: Callable[[str], bool]) -> list[dict]:
    """Listed courses with the body's title (trimmed) that no row owns: those with the same description and
    cover first (two rows may share a title). ``listed`` may be the whole listing or ``by_title``'s courses of
    that title."""
    title = body["title"].strip()
    found = [c for c in listed if c["title"] == title and not is_claimed(c["_id"])]
    found.sort(key=lambda c: (c["d"] != fingerprint(body.get("description")), c["c"] != body.get("coverImage")))
    return found


#: Tries of one read while looking for a course: a scan is many pages, each of which may fail on the way.
READ_TRIES = 3


def reads_retried(call: Caller, tries: int = READ_TRIES) -> Caller:
    """``call`` for reads, tried again on a transient failure other than a 429 (which the row waits out as any
    other). Looking for what an earlier create made reads every page of Get Courses: without this, one fault on
    any page cost the row an attempt, and at a thousand courses a row could run out of attempts (the soak saw
    two of 2,000 die so: ten faults in a row)."""

    def read(fn: Callable[[TagMangoClient], Any]) -> Any:
        for attempt in Retrying(retry=retry_if_exception(_transient_read), stop=stop_after_attempt(tries),
                                wait=wait_exponential_jitter(initial=0.2, max=2.0), reraise=True):
            with attempt:
                return call(fn)
        raise AssertionError("not reached")  # pragma: no cover

    return read


def _transient_read(exc: BaseException) -> bool:
    return isinstance(exc, TransientApiError) and not isinstance(exc, RateLimited)


def find_created(call: Caller, body: dict, ledger: Ledger, first_sent_at: float,
                 listings: Listings | None = None) -> dict | None:
    """The full course our earlier create made, claimed for this row; None if there is none.

    ``call`` makes one request through the credential's door (each read here is tried again on a 5xx, a timeout or
    a dropped connection: ``reads_retried``); ``listings`` (optional) shares scans between rows.
    """
    call = reads_retried(call)
    mangoes = list(body["mangoes"])
    if listings is None:
        listed = scan_courses(call, mangoes)
    else:
        listed = listings.fresh(mangoes, lambda keepalive: scan_courses(call, mangoes, keepalive))
    for course in same_title(listed, body, ledger.is_claimed):
        try:
            full = call(lambda api, c=course: api.update_course(c["_id"], {}))
        except PermanentApiError as exc:
            if exc.status != 400:
                if exc.status == 404:  # gone, or not this creator's: not ours to adopt
                    continue
                raise  # 401/403: the credential itself is refused; the row's failure handling says so
            # An empty update refused as invalid (the docs show `{}` but do not promise it): adopt what Get
            # Courses showed (no chapter ids, no createdAt).
            full = {"_id": course["_id"], "title": course["title"]}
        full = {**full, "_id": full.get("_id") or full.get("id") or course["_id"]}
        created = _created_at(full)
        if created is not None and created < first_sent_at - CLOCK_SKEW_S:
            continue
        if ledger.claim(course["_id"]):
            return full
    return None
