"""A course tree of the file against TagMango's: modules and lessons are matched by position, never by title.

TagMango has no reorder endpoint and appends what is created, so the file's module *n* is the course's module
*n* (read back with an empty Update Course), and its lesson *n* the module's chapter *n* (an empty Update Module;
each chapter's fields with an empty Update Chapter, unless the ledger shows the importer wrote that content).
What the file has beyond TagMango is created (or, in update mode, dead); what TagMango has beyond the file is
left alone, or in replace mode deleted: a module with the registry's Delete Module if there is one (its lessons
go with it), else its lessons (the module stays, said in a note). A lesson new in the middle of a module shifts
the ones after it, which the dry run says.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from importer.ingest.plan import Plan
from importer.matching.courses import Warn
from importer.matching.live import LiveCatalog
from importer.matching.modes import Mode, send_changes, settle_found
from tasks import operations
from tasks.ledger import Ledger, content_hash
from tasks.operations import CHAPTER, MODULE
from tasks.operations.base import object_ids
from tasks.rows import ErrorCode, Place, Row, snapshot


class TreeMatcher:
    """Settles the tree rows of the plan's courses against the live ones; plans the deletes of replace mode."""

    def __init__(self, catalog: LiveCatalog, ledger: Ledger | None, policy: Mode, plan: Plan, warn: Warn) -> None:
        self.catalog, self.ledger, self.policy, self.plan, self.warn = catalog, ledger, policy, plan, warn

    def settle(self, course_row: Row, course: dict, rows: list[Row]) -> None:
        """Match the course's planned modules and lessons (``rows``) to the live course's by position."""
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
                if not self.policy.creates:
                    for row in (module, *own):
                        row.die(ErrorCode.NOT_IN_TAGMANGO, f"module {position} of {course_row.key!r} is not in "
                                                           "TagMango (update mode creates nothing)")
                continue
            module_id = live_modules[index]
            live = self.catalog.module(module_id) or {"_id": module_id, "chapters": []}
            result = {"course_id": course_id, "module_id": module_id, "placeholder_chapters": []}
            where = f"module {position} is in TagMango ({module_id})"
            settle_found(module, live, {"course_id": course_id, "module_id": module_id}, result, self.policy,
                         exists=where, unchanged=where)
            self._lessons(course_row, module, own, object_ids(live.get("chapters")), result)
        if len(live_modules) > len(modules) and rows:
            self._extra_modules(course_row, live_modules[len(modules):])

    def _lessons(self, course_row: Row, module: Row, lessons: list[Row], live_chapters: list[str],
                 module_result: dict) -> None:
        titles_file = [r.body.get("title") for r in lessons]
        titles_live: list[Any] = []
        for index, lesson in enumerate(lessons):
            if index >= len(live_chapters):
                if not self.policy.creates:
                    lesson.die(ErrorCode.NOT_IN_TAGMANGO,
                               f"lesson {index + 1} of module {lesson.place.module_position} is not in TagMango")
                continue
            chapter_id = live_chapters[index]
            result = {**{k: v for k, v in module_result.items() if k != "placeholder_chapters"},
                      "chapter_id": chapter_id}
            if not self.policy.updates:
                lesson.skip(result, "exists", f"lesson {index + 1} is in TagMango ({chapter_id})")
                continue
            known = self.ledger.get(f"chapter:{chapter_id}") if self.ledger else None
            if known and known["content"] == content_hash(lesson.body):
                lesson.skip(result, "unchanged", f"unchanged since this importer wrote it ({chapter_id})")
                titles_live.append(lesson.body.get("title"))
                continue
            live = self.catalog.chapter(chapter_id) or {}
            titles_live.append(live.get("title"))
            ids = {"course_id": result["course_id"], "module_id": result["module_id"], "chapter_id": chapter_id}
            if not send_changes(lesson, live, ids, result):
                lesson.skip(result, "unchanged", f"unchanged ({chapter_id})")
        if self.policy.updates and self.policy.creates:
            self._warn_insertion(module, lessons, titles_file, titles_live)
        extra = live_chapters[len(lessons):]
        if extra and self.policy.deletes:
            self._delete_chapters(course_row, module_result["module_id"], extra)
        elif extra:
            self.warn(module, f"{len(extra)} lesson(s) at the end of module {module.title!r} of {course_row.key!r} "
                              "are in TagMango but not in the file: left alone (--mode replace deletes them)")

    def _warn_insertion(self, module: Row, lessons: list[Row], titles_file: list, titles_live: list) -> None:
        """A lesson new in the middle of a module shifts the ones after it: say what position matching does."""
        for index in range(len(titles_live)):
            if titles_file[index] != titles_live[index] and index + 1 < len(titles_file) and \
                    titles_file[index + 1:index + 1 + len(titles_live) - index] == titles_live[index:]:
                self.warn(lessons[index], f"lesson {titles_file[index]!r} (row {lessons[index].row}) is new in the "
                                          f"middle of module {module.title!r}: TagMango cannot reorder chapters, so "
                                          f"lessons are matched by position: from position {index + 1} on, each "
                                          "existing chapter is updated to the file's lesson at its position (its "
                                          "comments and questions stay with the position) and the last lesson is "
                                          "created at the end")
                return

    def _extra_modules(self, course_row: Row, extra: list[str]) -> None:
        """Modules of the course in TagMango after the file's last: left alone, or deleted in replace mode."""
        if not self.policy.deletes:
            self.warn(course_row, f"{len(extra)} module(s) of {course_row.key!r} in TagMango are not in the file: "
                                  "left alone")
            return
        for module_id in extra:
            live = self.catalog.module(module_id) or {}
            chapters = object_ids(live.get("chapters"))
            if operations.delete_for(MODULE) is not None:  # its lessons go with it (or, the call says, it is kept)
                self._delete(course_row, MODULE, module_id, str(live.get("title") or module_id),
                             {"module_id": module_id, "chapter_ids": chapters},
                             {"title": live.get("title"), "chapters": chapters})
                continue
            self.warn(course_row, f"module {live.get('title', module_id)!r} of {course_row.key!r} is not in the "
                                  "file: its chapters are deleted, the module itself stays (TagMango documents "
                                  "no Delete Module)")
            self._delete_chapters(course_row, module_id, chapters)

    def _delete_chapters(self, course_row: Row, module_id: str, chapter_ids: list[str]) -> None:
        for chapter_id in chapter_ids:
            live = self.catalog.chapter(chapter_id) or {}
            self._delete(course_row, CHAPTER, chapter_id, str(live.get("title") or chapter_id),
                         {"module_id": module_id, "chapter_id": chapter_id},
                         {f: live.get(f) for f in operations.update_for(CHAPTER).compared_fields if f in live})

    def _delete(self, course_row: Row, kind: str, object_id: str, title: str, ids: dict, before: dict) -> None:
        """Plan the delete (``delete_for(kind)``) of an object of the course that the file does not have."""
        course_id = course_row.result.get("course_id") if course_row.result else None
        self.plan.rows.append(Row(
            row_id=f"{course_row.sheet}:delete:{object_id}", op=operations.delete_for(kind).name, kind=kind,
            file=course_row.file, sheet=course_row.sheet, row=0, key=f"delete:{object_id}", title=title,
            ids={"course_id": course_id, **ids}, outcome="delete", place=Place(course_row.key, by_parent=False),
            reason=f"in TagMango, not in the file (course {course_row.key!r}); replace mode deletes it",
            before=snapshot(before)))
