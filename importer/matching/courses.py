"""Which course in TagMango a course row is (its identity), before anything is sent.

By the ``course_id`` the row gives; else by its key in the ledger, when this Redis remembers it (the ledger
only saves reads); else by title (trimmed) among the courses under its mangoes (Get Courses, paged, one scan
per set of mangoes per import: ``tasks.adopt``, which a worker uses the same way to find a course an earlier
attempt made), never one another row of the import has already matched, nor one the ledger knows under another
key. Several candidates are narrowed by description and cover; if that still leaves several, the course is
ambiguous and nothing is written for it (a ``course_id`` column picks one).
"""

from __future__ import annotations

from collections.abc import Callable

from importer.matching.live import LiveCatalog
from tasks.adopt import fingerprint, same_title
from tasks.ledger import Ledger
from tasks.rows import ErrorCode, Row

#: Says something about a row (or the whole plan) in the dry run: ``Reconciled.warn``.
Warn = Callable[[Row | None, str], None]


def match_course(row: Row, catalog: LiveCatalog, ledger: Ledger | None, claimed: set[str], warn: Warn,
                 detail: bool = True) -> dict | None:
    """The live course the row is (with ``_id`` and ``_how`` it was found), or None: not in TagMango, or the row
    is dead (a ``course_id`` that is not there, an ambiguous title). Its id joins ``claimed``. Without ``detail``
    a course found by the ledger or by title is not read back (only its id is needed)."""
    pinned = row.ids.get("course_id")
    if pinned:
        live = catalog.course(pinned)
        if live is None:
            row.die(ErrorCode.NOT_IN_TAGMANGO, f"course_id {pinned} is not a course of this creator in TagMango")
            return None
        claimed.add(pinned)
        return {**live, "_id": pinned, "_how": "its course_id"}
    remembered = (ledger.get(row.key) or {}).get("ids", {}).get("course_id") if ledger else None
    if remembered and not detail:  # the ledger saves the lookup
        claimed.add(remembered)
        return {"_id": remembered, "_how": "the ledger"}
    if remembered:
        live = catalog.course(remembered)
        if live is not None:
            claimed.add(remembered)
            return {**live, "_id": remembered, "_how": "the ledger"}
        warn(row, f"the ledger's course {remembered} for {row.key!r} is gone from TagMango; matching by title")

    def owned(course_id: str) -> bool:  # by another row of this import, or by another key in the ledger
        return course_id in claimed or (ledger is not None and ledger.is_claimed(course_id))

    found = same_title(catalog.titled(list(row.body["mangoes"]), row.body["title"]), row.body, owned)
    if not found:
        return None
    best = [c for c in found if c["d"] == fingerprint(row.body.get("description")) and
            c["c"] == row.body.get("coverImage")]
    if len(found) > 1 and len(best) != 1:
        ids = ", ".join(c["_id"] for c in found)
        row.die(ErrorCode.AMBIGUOUS_COURSE, f"{len(found)} courses titled {row.body['title']!r} exist under these "
                                       f"mangoes ({ids}); nothing is written for this course: add a course_id "
                                       "column with the one to use")
        return None
    course_id = (best or found)[0]["_id"]
    claimed.add(course_id)
    if not detail:
        return {"_id": course_id, "_how": "its title"}
    live = catalog.course(course_id)
    return None if live is None else {**live, "_id": course_id, "_how": "its title"}
