"""The mode policy (``--mode``): what a row becomes when TagMango has its object, when it has not, and what
becomes of what only TagMango has.

| mode    | exists                                  | does not exist          | in TagMango, not in the file |
|---------|-----------------------------------------|-------------------------|------------------------------|
| create  | skipped, outcome ``exists``             | created                 | left alone                   |
| merge   | updated if it changed, else ``unchanged`` | created               | left alone                   |
| update  | as merge                                | dead ``NOT_IN_TAGMANGO`` | left alone                  |
| replace | as merge                                | created                 | deleted                      |

Only the fields a row's body has are compared and sent (``changes`` of the kind's update operation): a column
the file does not have, or an empty cell, never changes anything. Chapter patches (the ``chapters`` sheet) are
sent only when they change something, in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from importer.matching.live import LiveCatalog
from tasks import job, operations
from tasks.ledger import Ledger
from tasks.rows import Row


@dataclass(frozen=True)
class Mode:
    name: str
    #: What TagMango lacks is created (else the row is dead NOT_IN_TAGMANGO).
    creates: bool
    #: What TagMango has is compared and updated with what changed (else skipped, outcome ``exists``).
    updates: bool
    #: What TagMango has and the file does not is deleted (else left alone).
    deletes: bool


_MODES = (Mode("create", creates=True, updates=False, deletes=False),
          Mode("merge", creates=True, updates=True, deletes=False),
          Mode("update", creates=False, updates=True, deletes=False),
          Mode("replace", creates=True, updates=True, deletes=True))
MODES = tuple(m.name for m in _MODES)
if MODES != job.MODES:
    raise ImportError(f"tasks.job.MODES {job.MODES} is not the modes here {MODES}")


def mode(name: str) -> Mode:
    """The policy of a mode by its name; ValueError for an unknown one."""
    for policy in _MODES:
        if policy.name == name:
            return policy
    raise ValueError(f"unknown mode {name!r}; use one of {', '.join(MODES)}")


def send_changes(row: Row, live: dict, ids: dict, result: dict | None = None) -> bool:
    """Make the row the partial update of what its body changes in the live object (known by ``ids``); False, and
    the row untouched, if nothing changes. ``result``: what rows waiting for it need, should they be released
    before it runs."""
    op = operations.update_for(row.kind)
    diff = op.changes(row.body, live)
    if not diff:
        return False
    row.become_update(op.name, ids, op.changed_body(row.body, diff), diff)
    if result is not None:
        row.result = result
    return True


def settle_found(row: Row, live: dict, ids: dict, result: dict, policy: Mode, *, exists: str,
                 unchanged: str) -> None:
    """The row's object is in TagMango (``live``): skipped (saying ``exists``) unless the mode updates; then an
    update of what changed, or skipped as unchanged (saying ``unchanged``)."""
    if not policy.updates:
        row.skip(result, "exists", exists)
    elif not send_changes(row, live, ids, result):
        row.skip(result, "unchanged", unchanged)


def settle_course(row: Row, live: dict, policy: Mode) -> None:
    course_id = live["_id"]
    result = {"course_id": course_id, "first_chapter": live.get("firstChapter"),
              "second_chapter": live.get("secondChapter"), "placeholder_modules": []}
    how = f"course {course_id}, found by {live['_how']}"
    settle_found(row, live, {"course_id": course_id}, result, policy,
                 exists=f"already in TagMango ({how}); create mode does not change it", unchanged=f"unchanged ({how})")


def settle_patch(row: Row, course_row: Row | None, live_courses: dict, catalog: LiveCatalog,
                 ledger: Ledger | None) -> None:
    """A chapters-sheet patch: sent only if it changes something; a chapter that does not exist is dead now."""
    chapter_id = row.ids.get("chapter_id")
    if not chapter_id and course_row is not None:
        live = live_courses.get(course_row.row_id)
        if live is None:
            return  # its course is created by this import: the patch waits for it
        chapter_id = {"first": live.get("firstChapter"), "second": live.get("secondChapter")}.get(
            row.params.get("chapter_slot"))
    if not chapter_id and ledger is not None and row.params.get("course_ref"):
        entry = ledger.get(row.params["course_ref"])
        chapter_id = (entry or {}).get("ids", {}).get(f"{row.params.get('chapter_slot')}_chapter")
    if not chapter_id:
        return  # the worker looks the course up when the row runs (COURSE_REF_NOT_FOUND if it finds none)
    live = catalog.chapter(chapter_id)
    if live is None:
        row.die("CHAPTER_NOT_FOUND", f"chapter {chapter_id} is not in TagMango (not sent)")
    elif not send_changes(row, live, {"chapter_id": chapter_id}):
        row.skip({"chapter_id": chapter_id}, "unchanged", f"chapter {chapter_id} already has these values")
