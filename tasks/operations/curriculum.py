"""The ``curriculum`` sheet: whole course trees, one row per lesson, parent columns repeated.

A sheet kind without a TagMango call of its own: its rows become Create Course, Create Module and Create Chapter
rows (see ``importer/ingest/tree.py``), whose places in the tree are decided when they run
(``tasks.operations.tree``). This module declares the sheet's columns and their rules.

A row with a module and no lesson declares an empty module; a row with only course columns declares a
course. Identity is the course key and the positions, never titles.
"""

from __future__ import annotations

from tasks.operations import cells, create_course
from tasks.operations.sheets import Column, SheetKind
from tasks.operations.update_chapter import FIELDS

#: curriculum column -> the Create Course column it fills.
COURSE_COLUMNS = {"course_id": "course_id", "course_title": "title", "course_description": "description",
                  "mangoes": "mangoes", "cover_image": "cover_image", "validity_in_days": "validity_in_days",
                  "mango_to_sell": "mango_to_sell", "mangoes_to_show_as_paid": "mangoes_to_show_as_paid",
                  "enable_drm": "enable_drm", "disable_qna": "disable_qna", "disable_comments": "disable_comments"}
MODULE_COLUMNS = ("module_title", "module_position")
#: curriculum column -> Create Chapter / Update Chapter field: the chapters sheet's, the lesson's title and
#: description prefixed (a curriculum row has the course's and the module's too).
CHAPTER_FIELDS = {{"title": "chapter_title", "description": "chapter_description"}.get(column, column): field_name
                  for column, field_name in FIELDS.items()}
CHAPTER_COLUMNS = ("chapter_position", *CHAPTER_FIELDS)


class Curriculum(SheetKind):
    sheet = "curriculum"
    sheet_names = ("curriculum", "curricula", "lessons", "lesson", "tree", "coursetree")
    classify_priority = 20  # module/lesson columns say "tree" before course_ref says "chapter patches"
    columns = (
        Column("course_ref", required=True),
        # the course's columns, with Create Course's rules (course_title is its title, and so on)
        *(Column(name, create_course.SHEET.rules()[target]) for name, target in COURSE_COLUMNS.items()),
        Column("module_title", marker=True),
        Column("module_position", cells.position, marker=True),
        Column("chapter_title", marker=True),
        Column("chapter_position", cells.position, marker=True),
        Column("chapter_description", marker=True),
        Column("content", cells.url),
        Column("content_type", cells.content_type),
        Column("is_free", cells.boolean),
        Column("embedded_link", cells.url),
        Column("additional_contents", cells.urls_or_clear),
        # what ``export`` writes besides: the ids (positions decide, the ids are for the reader) and the host they
        # belong to (imported into another host, they are foreign: importer.matching)
        Column("module_id", cells.object_id),
        Column("chapter_id", cells.object_id),
        Column("source_host"),
    )


SHEET = Curriculum()
