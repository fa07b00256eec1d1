"""A curriculum sheet → whole course trees: a course row, its modules and every lesson, in file order.

Rows are grouped by ``course_ref``; modules are ordered by ``module_position``, else as runs of one
``module_title``, and lessons by ``chapter_position``, else row order: identity is the key and the positions,
never titles (real courses repeat lesson titles). A course with any problem is not sent at all, as the rest would
go out of order; each module waits for the one before it, each lesson likewise, because TagMango appends and
cannot reorder (README, "Whole course trees").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from importer.ingest.plan import Plan
from importer.ingest.problems import ERROR, Problem, shorten
from importer.ingest.reader import Sheet
from importer.ingest.records import SheetRow
from tasks import operations
from tasks.operations import CHAPTER, COURSE, MODULE, create_course
from tasks.operations.curriculum import CHAPTER_COLUMNS, CHAPTER_FIELDS, COURSE_COLUMNS, MODULE_COLUMNS
from tasks.rows import Place, Row, RowState

DESCRIPTION_HINT = ("TagMango's Create Chapter needs a description: fill chapter_description, or give every empty "
                    "one a default with --set chapter_description='...'")


@dataclass
class Module:
    position: int
    title: str | None
    records: list[SheetRow] = field(default_factory=list)  # every row of the module, lessons or not
    lessons: list[SheetRow] = field(default_factory=list)


@dataclass
class Course:
    ref: str
    records: list[SheetRow] = field(default_factory=list)
    problems: list[tuple[int, str | None, str, str]] = field(default_factory=list)  # (row, column, value, reason)

    def problem(self, record: SheetRow, column: str | None, value: object, reason: str) -> None:
        self.problems.append((record.number, column, shorten(value), reason))


def _is_lesson(record: SheetRow) -> bool:
    return any(c in record.values for c in CHAPTER_COLUMNS)


def _has_module(record: SheetRow) -> bool:
    return any(c in record.values for c in MODULE_COLUMNS)


def _rows_text(numbers: Iterable[int]) -> str:
    numbers = sorted(set(numbers))
    return ", ".join(str(n) for n in numbers[:8]) + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")


def plan_tree(sheet: Sheet, label: str, records: list[SheetRow], present: set[str], plan: Plan) -> None:
    courses: dict[str, Course] = {}
    for record in records:
        ref = record.values.get("course_ref")
        if not ref:
            reason = "course_ref is required: the key of the course this row belongs to"
            plan.problems.append(Problem(sheet.file, sheet.name, record.number, "course_ref", "", ERROR, reason))
            plan.unsent.append(_unsent_row(sheet, label, record, "", reason))
            continue
        courses.setdefault(str(ref), Course(str(ref))).records.append(record)
    defined = {r.key: r for r in plan.rows if r.op == operations.create_for(COURSE).name}
    elsewhere = {r.place.course_ref: r.sheet for r in [*plan.rows, *plan.unsent] if r.place is not None}
    for course in courses.values():
        if course.ref in elsewhere:
            course.problem(course.records[0], "course_ref", course.ref, f"course {course.ref!r} also has rows in "
                                                                       f"sheet {elsewhere[course.ref]!r}; keep a "
                                                                       "course's rows in one sheet")
        _plan_course(sheet, label, course, present,
                     defined.get(course.ref) or defined.get(create_course.title_key(course.ref)), plan)


def _plan_course(sheet: Sheet, label: str, course: Course, present: set[str], defined: Row | None,
                 plan: Plan) -> None:
    for record in course.records:
        for column, value, reason in record.errors:
            course.problem(record, column, value, reason)
    course_row = _course_row(sheet, label, course, present, defined)
    modules = _modules(course, present)
    for module in modules:
        _check_lessons(course, module, present)
    if course.problems:
        for number, column, value, reason in course.problems:
            plan.problems.append(Problem(sheet.file, sheet.name, number, column, value, ERROR, reason))
        bad = _rows_text(n for n, *_ in course.problems)
        for record in course.records:
            reason = "; ".join(f"{c}: {r}" if c else r for n, c, _, r in course.problems if n == record.number) or (
                f"not sent: course {course.ref!r} has problems on row(s) {bad}, and a course is imported whole")
            plan.unsent.append(_unsent_row(sheet, label, record, course.ref, reason))
        return
    rows = _tree_rows(sheet, label, course, course_row, modules)
    plan.rows.extend(r for r in rows if not r.is_final)
    plan.unsent.extend(r for r in rows if r.is_final)


# -- the course --------------------------------------------------------------------------------------


def _course_row(sheet: Sheet, label: str, course: Course, present: set[str], defined: Row | None) -> Row | None:
    """The course's Create Course row: the courses sheet's, or one made from the course columns of its rows."""
    values: dict[str, object] = {}
    first_seen: dict[str, SheetRow] = {}
    for record in course.records:
        for column, target in COURSE_COLUMNS.items():
            if column not in record.values:
                continue
            value = record.values[column]
            if target not in values:
                values[target], first_seen[target] = value, record
            elif values[target] != value:
                course.problem(record, column, value, f"differs from row {first_seen[target].number} of the same "
                                                      f"course_ref {course.ref!r}; a course has one {column}")
    if defined is not None:
        draft = create_course.SHEET.draft({**values, "external_id": course.ref}, present)
        for target, value in values.items():
            if target in ("title", "mangoes") and draft.body.get(target) != defined.body.get(target):
                column = next(c for c, t in COURSE_COLUMNS.items() if t == target)
                course.problem(first_seen[target], column, value, f"differs from the courses sheet's row "
                                                                  f"{defined.row} for {course.ref!r}")
        return defined
    draft = create_course.SHEET.draft({**values, "external_id": course.ref}, present | {"external_id"})
    first = course.records[0]
    for column, value, reason in draft.errors:
        column = {"title": "course_title"}.get(column or "", column)
        course.problem(first, column, value, f"{reason} (on one row of course {course.ref!r}, or in a courses sheet)")
    return Row(row_id=f"{label}:{first.number}#course", op=operations.create_for(COURSE).name, kind=COURSE,
               file=sheet.file, sheet=sheet.name, row=first.number, key=course.ref, title=draft.title,
               body=draft.body, ids=draft.ids, source=first.source, derived=True)


# -- modules and lessons -----------------------------------------------------------------------------


def _modules(course: Course, present: set[str]) -> list[Module]:
    """The course's modules in order, each with its rows and its lessons; positions and titles checked."""
    modules = _modules_by_position(course) if "module_position" in present else _modules_by_title(course)
    for module in modules:
        titles = {r.values["module_title"] for r in module.records if "module_title" in r.values}
        if len(titles) > 1:
            record = next(r for r in module.records if r.values.get("module_title") != module.records[0].values.get(
                "module_title"))
            course.problem(record, "module_title", record.values.get("module_title"),
                           f"module position {module.position} of {course.ref!r} has different titles: "
                           f"{', '.join(repr(t) for t in sorted(titles))}")
        module.title = next(iter(sorted(titles)), None)
        if not module.title:
            course.problem(module.records[0], "module_title", "", f"module {module.position} of {course.ref!r} has "
                                                                  "no title")
        module.lessons = [r for r in module.records if _is_lesson(r)]
    return modules


def _modules_by_position(course: Course) -> list[Module]:
    """With a module_position column: rows may come in any order; positions must be 1, 2, 3... without gaps."""
    found: dict[int, Module] = {}
    for record in course.records:
        if not _has_module(record) and not _is_lesson(record):
            continue  # declares the course only
        position = record.values.get("module_position")
        if position is None:
            course.problem(record, "module_position", "", "empty: with a module_position column every lesson "
                                                          "and module row needs one")
            continue
        module = found.setdefault(int(position), Module(int(position), None))
        module.records.append(record)
    if sorted(found) != list(range(1, len(found) + 1)):
        missing = sorted(set(range(1, max(found, default=0) + 1)) - set(found))
        record = found[max(found)].records[0]
        course.problem(record, "module_position", max(found), f"course {course.ref!r} has module positions "
                       f"{_rows_text(found)}: position(s) {_rows_text(missing)} missing")
    return [found[p] for p in sorted(found)]


def _modules_by_title(course: Course) -> list[Module]:
    """Without positions: a module is a run of rows with the same module_title (an empty cell continues it)."""
    modules: list[Module] = []
    current: Module | None = None
    for record in course.records:
        title = record.values.get("module_title")
        if title is None:
            if _is_lesson(record):
                if current is None:
                    course.problem(record, "module_title", "", "a lesson needs a module: give module_title")
                    continue
                current.records.append(record)  # an empty module cell continues the module above
            continue
        if current is None or title != current.title:
            earlier = next((m for m in modules if m.title == title), None)
            if earlier is not None:
                course.problem(record, "module_title", title, f"module {title!r} already started on row "
                               f"{earlier.records[0].number} and other modules came between; keep its rows "
                               "together, or add a module_position column")
                continue
            current = Module(len(modules) + 1, title)
            modules.append(current)
        current.records.append(record)
    return modules


def _check_lessons(course: Course, module: Module, present: set[str]) -> None:
    if "chapter_position" in present:
        by_position: dict[int, SheetRow] = {}
        for record in module.lessons:
            position = record.values.get("chapter_position")
            if position is None:
                course.problem(record, "chapter_position", "", "empty: with a chapter_position column every lesson "
                                                               "needs one")
            elif int(position) in by_position:
                course.problem(record, "chapter_position", position, f"lesson {position} of module "
                               f"{module.position} is also on row {by_position[int(position)].number}")
            else:
                by_position[int(position)] = record
        if by_position and sorted(by_position) != list(range(1, len(by_position) + 1)):
            missing = sorted(set(range(1, max(by_position) + 1)) - set(by_position))
            last = by_position[max(by_position)]
            course.problem(last, "chapter_position", max(by_position), f"module {module.position} of {course.ref!r} "
                           f"has no lesson at position(s) {_rows_text(missing)}")
        module.lessons = [by_position[p] for p in sorted(by_position)]
    for record in module.lessons:
        values = record.values
        if not values.get("chapter_title"):
            course.problem(record, "chapter_title", "", "a lesson needs a title")
        if not values.get("chapter_description") and not values.get("chapter_id"):  # an exported lesson exists
            course.problem(record, "chapter_description", "", DESCRIPTION_HINT)
        if ("content" in values) != ("content_type" in values):
            have, lack = ("content", "content_type") if "content" in values else ("content_type", "content")
            course.problem(record, lack, "", f"{have} and {lack} must be given together")


# -- rows --------------------------------------------------------------------------------------------


def _tree_rows(sheet: Sheet, label: str, course: Course, course_row: Row, modules: list[Module]) -> list[Row]:
    """The course row (if made here), a row per module and per lesson, each waiting for the one before it;
    every spreadsheet row of the course is exactly one of them, or a repeat."""
    rows: list[Row] = [course_row] if course_row.derived else []
    claimed: set[int] = set()
    course_only = [r for r in course.records if not _has_module(r) and not _is_lesson(r)]
    if course_row.derived and course_only:  # a row that declares just the course is the course row's own line
        _own(course_row, label, course_only[0])
        claimed.add(course_only[0].number)
    previous_module = course_row
    for index, module in enumerate(modules):
        declarations = [r for r in module.records if not _is_lesson(r)]
        first = (declarations or module.lessons)[0]
        module_row = Row(row_id=f"{label}:{first.number}#module", op=operations.create_for(MODULE).name, kind=MODULE,
                         file=sheet.file, sheet=sheet.name, row=first.number, key=f"{course.ref}/m{module.position}",
                         title=module.title or "", body={"title": module.title}, parent=previous_module.row_id,
                         place=Place(course_row.key, course.ref, index, module.position, lessons=len(module.lessons)),
                         source=first.source, derived=True)
        if declarations:
            _own(module_row, label, declarations[0])
            claimed.add(declarations[0].number)
        rows.append(module_row)
        previous = module_row
        for position, record in enumerate(module.lessons, start=1):
            body = {field_name: record.values[column] for column, field_name in CHAPTER_FIELDS.items()
                    if column in record.values}
            lesson = Row(row_id=f"{label}:{record.number}", op=operations.create_for(CHAPTER).name, kind=CHAPTER,
                         file=sheet.file, sheet=sheet.name, row=record.number,
                         key=f"{course.ref}/m{module.position}/c{position}",
                         title=str(record.values.get("chapter_title") or ""), body=body, parent=previous.row_id,
                         place=Place(course_row.key, course.ref, position - 1, module.position, position),
                         source=record.source)
            rows.append(lesson)
            claimed.add(record.number)
            previous = lesson
        previous_module = module_row
    for record in course.records:
        if record.number not in claimed:  # a second declaration of the same course or module
            rows.append(_unsent_row(sheet, label, record, course.ref, "repeats what another row of this course "
                                                                      "declares; nothing to send", RowState.SKIPPED))
    return rows


def _own(row: Row, label: str, record: SheetRow) -> None:
    """Make ``row`` the line of spreadsheet row ``record`` (a row that declares a course or an empty module)."""
    row.row_id, row.row, row.source, row.derived = f"{label}:{record.number}", record.number, record.source, False


def _unsent_row(sheet: Sheet, label: str, record: SheetRow, ref: str, reason: str,
                state: RowState = RowState.INVALID) -> Row:
    kind = CHAPTER if _is_lesson(record) else (MODULE if _has_module(record) else COURSE)
    title = str(record.values.get("chapter_title") or record.values.get("module_title") or
                record.values.get("course_title") or ref)
    return Row(row_id=f"{label}:{record.number}", op=operations.create_for(kind).name, kind=kind, file=sheet.file,
               sheet=sheet.name, row=record.number, key=f"{ref}/row{record.number}", title=title,
               state=state, reason=reason, source=record.source)
