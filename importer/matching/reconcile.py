"""Matching a plan against TagMango's live catalog: what exists, what changed, what to do, per mode.

TagMango is the truth and Redis a cache. Before anything is sent, every course row is looked up: by its key in the
ledger (if this Redis remembers it; the ledger only saves reads), else by title (trimmed) among the courses under
its mangoes (Get Courses, paged, one scan per set of mangoes per import), never one another row of the import has
already matched, nor one the ledger knows under another key. Several candidates are narrowed by description and
cover; if that still leaves several, the course is ambiguous and nothing is written for it (a ``course_id`` column
picks one). Modules and chapters are matched by position inside their parent, read back from TagMango (empty
Update Course → its modules; empty Update Module → its chapters; empty Update Chapter → its fields).

Modes (``--mode``), for every row:

- ``create``: create what does not exist; what exists is ``skipped`` (outcome ``exists``), with its ids;
- ``merge``: create what does not exist, update what changed (only the fields that changed), leave the rest
  (``unchanged``, no request);
- ``update``: only update; a row whose object does not exist is dead ``NOT_IN_TAGMANGO``;
- ``replace``: ``merge``, then delete the chapters of the imported courses that the file no longer has
  (TagMango documents no delete for modules and courses: such modules are kept, emptied, and said so).

A column the file does not have, or an empty cell, never changes anything: only fields in a row's body are
compared and sent. Chapter patches (the ``chapters`` sheet) are sent only when they change something, in
every mode. Rows this decides are changed in place: the operation (an update instead of a create), the ids,
the body (only the changed fields), and ``diff`` ({field: [old, new]}) for the dry run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from importer.ingest.plan import Plan
from importer.matching.live import LiveCatalog
from tasks import operations
from tasks.adopt import fingerprint, same_title
from tasks.ledger import Ledger, content_hash
from tasks.operations import CHAPTER, COURSE, MODULE
from tasks.operations.base import object_ids
from tasks.rows import Code, Place, Row, RowFailure, RowState
from tasks.rowstore import now

MODES = ("create", "merge", "update", "replace")


@dataclass
class Reconciled:
    mode: str
    reads: int = 0
    warnings: list[tuple[Row | None, str]] = field(default_factory=list)

    def warn(self, row: Row | None, text: str) -> None:
        self.warnings.append((row, text))


# -- what rows become ------------------------------------------------------------------------------------


def _skip(row: Row, result: dict, outcome: str, reason: str) -> None:
    row.state, row.result, row.outcome, row.reason, row.finished_at = RowState.SKIPPED, result, outcome, reason, now()


def _dead(row: Row, code: str, message: str) -> None:
    row.state, row.error, row.finished_at = RowState.DEAD, RowFailure(code, message), now()


def _update(row: Row, ids: dict, diff: dict[str, list]) -> None:
    """Run the row as a partial update of an object that exists: right away, needing nothing from a parent."""
    op = operations.update_for(row.kind)
    row.body = op.changed_body(row.body, diff)
    row.op, row.ids, row.released, row.outcome = op.name, ids, True, "update"
    row.diff = diff
    if row.place is not None:  # its object is known: no parent decides it any more
        row.place.by_parent = row.place.takeover = False


# -- the matching ----------------------------------------------------------------------------------------


def reconcile(plan: Plan, catalog: LiveCatalog, mode: str, ledger: Ledger | None = None) -> Reconciled:
    """Decide every row of the plan against the live catalog (reads only); move settled rows to ``unsent``."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    out = Reconciled(mode)
    by_course: dict[str, list[Row]] = defaultdict(list)
    for row in plan.rows:
        if row.placed_by_parent:
            by_course[row.place.course_key].append(row)
    courses = {row.row_id: row for row in plan.rows if row.op == operations.create_for(COURSE).name}
    patch = operations.update_for(CHAPTER).name
    patched = {row.parent for row in plan.rows if row.op == patch and row.parent}
    claimed: set[str] = set()
    live_courses: dict[str, dict | None] = {}  # course row id -> the live course, or None if it does not exist
    for row in courses.values():
        # The whole course is read back only when something needs it: its fields (merge), its modules (a tree),
        # its first/second chapter (patches); create mode on a flat file needs only its id.
        detail = mode != "create" or bool(by_course.get(row.key)) or row.row_id in patched
        live = _match_course(row, catalog, ledger, claimed, out, detail)
        live_courses[row.row_id] = live
        if live is None:
            if mode == "update" and not row.is_final:
                _dead(row, Code.NOT_IN_TAGMANGO, "no such course in TagMango (by key or title under its mangoes); "
                                                 "update mode only changes what exists: use --mode merge to create it")
                for child in by_course.get(row.key, []):
                    _dead(child, Code.NOT_IN_TAGMANGO, f"its course {row.key!r} is not in TagMango (update mode)")
            continue
        _settle_course(row, live, mode)
        _settle_tree(row, live, by_course.get(row.key, []), catalog, ledger, mode, plan, out)
    for row in plan.rows:
        if row.op == patch and not row.placed_by_parent and not row.is_final:
            _settle_patch(row, courses.get(row.parent or ""), live_courses, catalog, ledger)
    out.reads = catalog.reads
    plan.unsent.extend(r for r in plan.rows if r.is_final)
    plan.rows = [r for r in plan.rows if not r.is_final]
    return out


def _match_course(row: Row, catalog: LiveCatalog, ledger: Ledger | None, claimed: set[str],
                  out: Reconciled, detail: bool = True) -> dict | None:
    pinned = row.ids.get("course_id")
    if pinned:
        live = catalog.course(pinned)
        if live is None:
            _dead(row, Code.NOT_IN_TAGMANGO, f"course_id {pinned} is not a course of this creator in TagMango")
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
        out.warn(row, f"the ledger's course {remembered} for {row.key!r} is gone from TagMango; matching by title")
    def owned(course_id: str) -> bool:  # by another row of this import, or by another key in the ledger
        return course_id in claimed or (ledger is not None and ledger.is_claimed(course_id))

    found = same_title(catalog.courses(list(row.body["mangoes"])), row.body, owned)
    if not found:
        return None
    best = [c for c in found if c["d"] == fingerprint(row.body.get("description")) and
            c["c"] == row.body.get("coverImage")]
    if len(found) > 1 and len(best) != 1:
        ids = ", ".join(c["_id"] for c in found)
        _dead(row, Code.AMBIGUOUS_COURSE, f"{len(found)} courses titled {row.body['title']!r} exist under these "
                                          f"mangoes ({ids}); nothing is written for this course: add a course_id "
                                          "column with the one to use")
        return None
    course_id = (best or found)[0]["_id"]
    claimed.add(course_id)
    if not detail:
        return {"_id": course_id, "_how": "its title"}
    live = catalog.course(course_id)
    return None if live is None else {**live, "_id": course_id, "_how": "its title"}


def _settle_course(row: Row, live: dict, mode: str) -> None:
    course_id = live["_id"]
    result = {"course_id": course_id, "first_chapter": live.get("firstChapter"),
              "second_chapter": live.get("secondChapter"), "placeholder_modules": []}
    how = f"course {course_id}, found by {live['_how']}"
    if mode == "create":
        _skip(row, result, "exists", f"already in TagMango ({how}); create mode does not change it")
        return
    diff = operations.update_for(COURSE).changes(row.body, live)
    if diff:
        _update(row, {"course_id": course_id}, diff)
        row.result = result  # what rows waiting for it need, should they be released before it runs
    else:
        _skip(row, result, "unchanged", f"unchanged ({how})")


def _settle_tree(course_row: Row, course: dict, rows: list[Row], catalog: LiveCatalog, ledger: Ledger | None,
                 mode: str, plan: Plan, out: Reconciled) -> None:
    """Match the course's planned modules and lessons to the live ones by position."""
    course_id = course["_id"]
    live_modules = object_ids(course.get("modules"))
    modules = sorted((r for r in rows if r.kind == MODULE), key=lambda r: r.place.index)
    lessons: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        if row.kind == CHAPTER:
            lessons[row.place.module_position].append(row)
    for module in modules:
        index, position = module.place.index, module.place.module_position
        own = sorted(lessons[position], key=lambda r: r.place.index)
        if index >= len(live_modules):
            if mode == "update":
                for row in (module, *own):
                    _dead(row, Code.NOT_IN_TAGMANGO, f"module {position} of {course_row.key!r} is not in TagMango "
                                                     "(update mode creates nothing)")
            continue
        module_id = live_modules[index]
        live = catalog.module(module_id) or {"_id": module_id, "chapters": []}
        result = {"course_id": course_id, "module_id": module_id, "placeholder_chapters": []}
        diff = {} if mode == "create" else operations.update_for(MODULE).changes(module.body, live)
        if diff:
            _update(module, {"course_id": course_id, "module_id": module_id}, diff)
            module.result = result
        else:
            _skip(module, result, "exists" if mode == "create" else "unchanged", f"module {position} is in TagMango "
                  f"({module_id})")
        _settle_lessons(course_row, module, own, object_ids(live.get("chapters")), catalog, ledger, mode, plan, out,
                        result)
    if len(live_modules) > len(modules) and rows:
        extra = live_modules[len(modules):]
        if mode == "replace":
            for module_id in extra:
                live = catalog.module(module_id) or {}
                chapters = object_ids(live.get("chapters"))
                if operations.delete_for(MODULE) is not None:  # its chapters go with it, or with it kept (the call)
                    _delete(course_row, MODULE, module_id, str(live.get("title") or module_id),
                            {"module_id": module_id, "chapter_ids": chapters}, plan)
                    continue
                out.warn(course_row, f"module {live.get('title', module_id)!r} of {course_row.key!r} is not in the "
                                     "file: its chapters are deleted, the module itself stays (TagMango documents "
                                     "no Delete Module)")
                _delete_chapters(course_row, module_id, chapters, catalog, plan)
        else:
            out.warn(course_row, f"{len(extra)} module(s) of {course_row.key!r} in TagMango are not in the file: "
                                 "left alone")


def _settle_lessons(course_row: Row, module: Row, lessons: list[Row], live_chapters: list[str],
                    catalog: LiveCatalog, ledger: Ledger | None, mode: str, plan: Plan, out: Reconciled,
                    module_result: dict) -> None:
    titles_file = [r.body.get("title") for r in lessons]
    titles_live: list[Any] = []
    for index, lesson in enumerate(lessons):
        if index >= len(live_chapters):
            if mode == "update":
                _dead(lesson, Code.NOT_IN_TAGMANGO, f"lesson {index + 1} of module "
                                                    f"{lesson.place.module_position} is not in TagMango")
            continue
        chapter_id = live_chapters[index]
        result = {**{k: v for k, v in module_result.items() if k != "placeholder_chapters"}, "chapter_id": chapter_id}
        if mode == "create":
            _skip(lesson, result, "exists", f"lesson {index + 1} is in TagMango ({chapter_id})")
            continue
        known = ledger.get(f"chapter:{chapter_id}") if ledger else None
        if known and known["content"] == content_hash(lesson.body):
            _skip(lesson, result, "unchanged", f"unchanged since this importer wrote it ({chapter_id})")
            titles_live.append(lesson.body.get("title"))
            continue
        live = catalog.chapter(chapter_id) or {}
        titles_live.append(live.get("title"))
        diff = operations.update_for(CHAPTER).changes(lesson.body, live)
        if diff:
            _update(lesson, {"course_id": result["course_id"], "module_id": result["module_id"],
                             "chapter_id": chapter_id}, diff)
            lesson.result = result
        else:
            _skip(lesson, result, "unchanged", f"unchanged ({chapter_id})")
    if mode in ("merge", "replace"):
        _warn_insertion(course_row, module, lessons, titles_file, titles_live, out)
    if mode == "replace" and len(live_chapters) > len(lessons):
        _delete_chapters(course_row, module_result["module_id"], live_chapters[len(lessons):], catalog, plan)
    elif len(live_chapters) > len(lessons):
        out.warn(module, f"{len(live_chapters) - len(lessons)} lesson(s) at the end of module {module.title!r} of "
                         f"{course_row.key!r} are in TagMango but not in the file: left alone (--mode replace "
                         "deletes them)")


def _warn_insertion(course_row: Row, module: Row, lessons: list[Row], titles_file: list, titles_live: list,
                    out: Reconciled) -> None:
    """A lesson new in the middle of a module shifts the ones after it: say what position matching does."""
    for index in range(len(titles_live)):
        if titles_file[index] != titles_live[index] and index + 1 < len(titles_file) and \
                titles_file[index + 1:index + 1 + len(titles_live) - index] == titles_live[index:]:
            out.warn(lessons[index], f"lesson {titles_file[index]!r} (row {lessons[index].row}) is new in the middle "
                                     f"of module {module.title!r}: TagMango cannot reorder chapters, so lessons are "
                                     f"matched by position: from position {index + 1} on, each existing chapter is "
                                     "updated to the file's lesson at its position (its comments and questions stay "
                                     "with the position) and the last lesson is created at the end")
            return


def _delete_chapters(course_row: Row, module_id: str, chapter_ids: list[str], catalog: LiveCatalog,
                     plan: Plan) -> None:
    for chapter_id in chapter_ids:
        live = catalog.chapter(chapter_id) or {}
        _delete(course_row, CHAPTER, chapter_id, str(live.get("title") or chapter_id),
                {"module_id": module_id, "chapter_id": chapter_id}, plan)


def _delete(course_row: Row, kind: str, object_id: str, title: str, ids: dict, plan: Plan) -> None:
    """Plan the delete of an object of the course that the file does not have (``delete_for(kind)``)."""
    plan.rows.append(Row(
        row_id=f"{course_row.sheet}:delete:{object_id}", op=operations.delete_for(kind).name, kind=kind,
        file=course_row.file, sheet=course_row.sheet, row=0, key=f"delete:{object_id}", title=title,
        ids={"course_id": course_row.result.get("course_id") if course_row.result else None, **ids}, outcome="delete",
        place=Place(course_row.key, by_parent=False),
        reason=f"in TagMango, not in the file (course {course_row.key!r}); replace mode deletes it"))


def _settle_patch(row: Row, course_row: Row | None, live_courses: dict, catalog: LiveCatalog,
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
        _dead(row, "CHAPTER_NOT_FOUND", f"chapter {chapter_id} is not in TagMango (not sent)")
        return
    diff = operations.update_for(CHAPTER).changes(row.body, live)
    if diff:
        _update(row, {"chapter_id": chapter_id}, diff)
    else:
        _skip(row, {"chapter_id": chapter_id}, "unchanged", f"chapter {chapter_id} already has these values")


