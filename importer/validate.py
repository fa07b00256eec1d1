"""Files in, a ``Plan`` out: every sheet mapped, every row checked, all problems found at once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from importer import limits, rules
from importer.columns import (CHAPTER as CHAPTER_SHEET, COURSE as COURSE_SHEET, REQUIRED, canonical_lookup,
                              closest, kind_from_headers, normalise_header, sheet_kind_from_name)
from importer.plan import CHAPTER, COURSE, Plan, PlanItem, UnsentRow
from importer.problems import ERROR, WARNING, Problem, shorten
from importer.reader import Sheet, read_file

_COURSE_RULES = {
    "external_id": rules.text, "title": rules.text, "description": rules.text, "mangoes": rules.object_ids,
    "cover_image": rules.url, "validity_in_days": rules.whole_number_at_least_1, "mango_to_sell": rules.object_id,
    "mangoes_to_show_as_paid": rules.object_ids, "enable_drm": rules.boolean, "disable_qna": rules.boolean,
    "disable_comments": rules.boolean,
}
_CHAPTER_RULES = {
    "chapter_id": rules.object_id, "course_ref": rules.text, "chapter_slot": rules.chapter_slot,
    "title": rules.text, "description": rules.text, "content": rules.url, "content_type": rules.content_type,
    "is_free": rules.boolean, "embedded_link": rules.url, "additional_contents": rules.urls_or_clear,
}


@dataclass
class Options:
    """``--mapping`` (their header -> our column) and ``--set`` (column -> constant)."""

    mapping: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)


def load_mapping(path: str | Path) -> dict[str, str]:
    """Read a YAML or JSON mapping file; raises ValueError with a plain reason."""
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{Path(path).name}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{Path(path).name}: must map each of your headers to one of our column names")
    known = set(_COURSE_RULES) | set(_CHAPTER_RULES)
    bad = [v for v in data.values() if v not in known]
    if bad:
        raise ValueError(f"{Path(path).name}: unknown target column {bad[0]!r}; known: {', '.join(sorted(known))}")
    return data


def build_plan(paths: list[str | Path], options: Options | None = None) -> Plan:
    """Read, map and validate the files. Raises InputError for a file that cannot be read at all."""
    options = options or Options()
    plan = Plan()
    sheets: list[tuple[Sheet, str]] = []
    for path in paths:
        source = read_file(path)
        plan.files.append({"name": source.path.name, "checksum": source.checksum})
        for sheet_name, reason in source.warnings:  # hidden sheets (issue 16)
            plan.problems.append(Problem(source.path.name, sheet_name, None, None, "", WARNING, reason))
        sheets.extend(_classify(source.sheets, options, plan))
    used_ids = set()
    courses = [s for s, k in sheets if k == COURSE_SHEET]
    chapters = [s for s, k in sheets if k == CHAPTER_SHEET]
    course_keys: dict[str, PlanItem] = {}
    for sheet in courses:
        _check_sheet(sheet, COURSE_SHEET, options, plan, used_ids, course_keys)
    for sheet in chapters:
        _check_sheet(sheet, CHAPTER_SHEET, options, plan, used_ids, course_keys)
    _link_chapters(plan, course_keys)
    if not plan.items and not plan.unsent and not plan.errors:
        for f in plan.files:
            plan.problems.append(Problem(f["name"], "", None, None, "", ERROR, "no data rows to import"))
    return plan


# -- sheets --------------------------------------------------------------------------------------


def _classify(sheets: list[Sheet], options: Options, plan: Plan) -> list[tuple[Sheet, str]]:
    named = [(s, sheet_kind_from_name(s.name)) for s in sheets]
    if len(sheets) > 1 and any(kind for _, kind in named):
        out = []
        for sheet, kind in named:
            if kind:
                out.append((sheet, kind))
            else:
                plan.problems.append(Problem(sheet.file, sheet.name, None, None, "", WARNING,
                                             "sheet ignored: only sheets named 'courses' and 'chapters' are imported"))
        return out
    out = []
    for sheet in sheets:
        kind = kind_from_headers(sheet.headers, options.mapping)
        if kind is None and "mangoes" in options.constants:
            kind = COURSE_SHEET if len(sheet.headers) else None
        if kind is None:
            severity = ERROR if len(sheets) == 1 else WARNING
            plan.problems.append(Problem(sheet.file, sheet.name, None, None, "", severity,
                                         "cannot tell whether this sheet holds courses or chapters: it has none of "
                                         "the columns title, mangoes, chapter_id, course_ref, content"
                                         + (f"; {sheet.header_note}" if sheet.header_note else "")))
            continue
        out.append((sheet, kind))
    return out


def _map_headers(sheet: Sheet, kind: str, options: Options, plan: Plan) -> dict[str, str] | None:
    """header -> canonical column; unknown headers are warned about and carried along."""
    lookup = canonical_lookup(kind)
    user = {normalise_header(k): v for k, v in options.mapping.items()}
    mapped: dict[str, str] = {}
    for header in sheet.headers:
        written = sheet.original.get(header, header)  # a repeated header means the same column (issue 16)
        target = user.get(normalise_header(written)) or lookup.get(normalise_header(written))
        if target is not None and target not in (_COURSE_RULES if kind == COURSE_SHEET else _CHAPTER_RULES):
            target = None
        if target is None:
            plan.problems.append(Problem(sheet.file, sheet.name, None, None, shorten(header), WARNING,
                                         f"unknown column {header!r}: not sent to TagMango, kept in the results file"))
            continue
        if target in mapped.values():
            other = next(h for h, t in mapped.items() if t == target)
            plan.problems.append(Problem(sheet.file, sheet.name, None, target, shorten(header), ERROR,
                                         f"columns {other!r} and {header!r} both mean {target}; keep one"))
            return None
        mapped[header] = target
    missing = [c for c in REQUIRED[kind] if c not in mapped.values() and c not in options.constants]
    for column in missing:
        hint = closest(column, [h for h in sheet.headers if h not in mapped])
        suggestion = f"; did you mean {hint!r}? (use --mapping)" if hint else ""
        plan.problems.append(Problem(sheet.file, sheet.name, None, column, "", ERROR,
                                     f"required column {column!r} is missing{suggestion}"))
    if kind == CHAPTER_SHEET and "chapter_id" not in mapped.values() and not (
            {"course_ref", "chapter_slot"} <= set(mapped.values())):
        plan.problems.append(Problem(sheet.file, sheet.name, None, "chapter_id", "", ERROR,
                                     "a chapters sheet needs a chapter_id column, or course_ref and chapter_slot"))
        return None
    return None if missing else mapped


def _check_sheet(sheet: Sheet, kind: str, options: Options, plan: Plan, used_ids: set,
                 course_keys: dict[str, PlanItem]) -> None:
    for note in sheet.notes:
        plan.problems.append(Problem(sheet.file, sheet.name, None, None, "", WARNING, note))
    mapped = _map_headers(sheet, kind, options, plan)
    if not sheet.row_numbers:
        plan.problems.append(Problem(sheet.file, sheet.name, None, None, "", WARNING,
                                     "the sheet has a header but no data rows"))
    if mapped is None:
        return
    sheet_label = sheet.name if sheet.name not in used_ids else f"{sheet.file}:{sheet.name}"
    used_ids.add(sheet_label)
    plan.headers[sheet_label] = list(sheet.headers)
    rule_table = limits.bounded(_COURSE_RULES if kind == COURSE_SHEET else _CHAPTER_RULES,
                                {column: sheet.columns[header] for header, column in mapped.items()})
    constants = {c: v for c, v in options.constants.items() if c in rule_table}
    present = set(mapped.values())
    headers = list(sheet.headers)
    cells = [sheet.columns[h] for h in headers]
    seen: dict[str, tuple[str, dict, int]] = {}  # key -> (row_id, body, row number)
    pending: dict[str, PlanItem | UnsentRow] = {}
    caches: dict[str, dict] = {column: {} for column in rule_table}
    by_column = [(column, sheet.columns[header], constants.get(column)) for header, column in mapped.items()]
    by_column += [(column, [None] * len(sheet.row_numbers), constant) for column, constant in constants.items()
                  if column not in present]
    for index, number in enumerate(sheet.row_numbers):
        source = {h: col[index] for h, col in zip(headers, cells, strict=True)}
        values, errors = _convert_row(index, by_column, rule_table, caches)
        row_id = f"{sheet_label}:{number}"
        build = _course_item if kind == COURSE_SHEET else _chapter_item
        item, extra_errors, warnings = build(values, sheet, row_id, number, source, present)
        if extra_errors:
            failed_columns = {c for c, _, _ in errors}
            errors.extend(e for e in extra_errors if e[0] not in failed_columns)
        for column, value, reason in warnings:
            plan.problems.append(Problem(sheet.file, sheet.name, number, column, shorten(value), WARNING, reason))
        for column, value, reason in errors:
            plan.problems.append(Problem(sheet.file, sheet.name, number, column, shorten(value), ERROR, reason))
        if errors:
            plan.unsent.append(UnsentRow(item.kind, row_id, sheet.file, sheet.name, number, item.key, item.title,
                                         "invalid", "; ".join(f"{c}: {r}" if c else r for c, _, r in errors), source))
            continue
        _add_unique(item, seen, pending, plan, sheet)
    for entry in pending.values():
        if isinstance(entry, PlanItem):
            plan.items.append(entry)
            if entry.kind == COURSE:
                course_keys[entry.key] = entry
        else:
            plan.unsent.append(entry)
    plan.unsent.sort(key=lambda u: (u.sheet, u.row))


def _convert_row(index: int, by_column: list[tuple[str, list, str | None]], rule_table: dict,
                 caches: dict[str, dict]) -> tuple[dict, list]:
    """Apply each column's rule to row ``index``; a --set constant fills an empty cell.

    Results are cached per distinct cell text: catalog columns repeat a lot (mangoes, flags, days).
    """
    values: dict[str, object] = {}
    errors: list[tuple[str, str, str]] = []
    for column, cells, constant in by_column:
        text = cells[index]
        if text is None:
            text = constant
            if text is None:
                continue
        cache = caches[column]
        outcome = cache.get(text, _MISSING)
        if outcome is _MISSING:
            try:
                outcome = rule_table[column](text)
            except rules.CellError as exc:
                outcome = exc
            if len(cache) < 50_000:
                cache[text] = outcome
        if isinstance(outcome, rules.CellError):
            errors.append((column, text, str(outcome)))
        else:
            values[column] = list(outcome) if isinstance(outcome, list) else outcome
    return values, errors


_MISSING = object()


def _add_unique(item: PlanItem, seen: dict, pending: dict, plan: Plan, sheet: Sheet) -> None:
    """Repeats with the same content are imported once; same key with other content is an error on both."""
    earlier = seen.get(item.key)
    if earlier is None:
        seen[item.key] = (item.row_id, item.body, item.row)
        pending[item.row_id] = item
        return
    first_id, first_body, first_row = earlier
    if first_body == item.body:
        plan.problems.append(Problem(sheet.file, sheet.name, item.row, None, shorten(item.title), WARNING,
                                     f"repeats row {first_row} exactly; imported once"))
        pending[item.row_id] = UnsentRow(item.kind, item.row_id, item.file, item.sheet, item.row, item.key,
                                         item.title, "skipped", f"repeat of row {first_row}", item.source)
        return
    column = "external_id" if item.kind == COURSE and not item.key.startswith("title:") else (
        "title" if item.kind == COURSE else "chapter_id")
    reason = "same {what} as row {other} but different content; make the key unique or remove one"
    what = "key" if item.kind == CHAPTER else column
    plan.problems.append(Problem(sheet.file, sheet.name, item.row, column, shorten(item.key.removeprefix("title:")),
                                 ERROR, reason.format(what=what, other=first_row)))
    plan.problems.append(Problem(sheet.file, sheet.name, first_row, column, shorten(item.key.removeprefix("title:")),
                                 ERROR, reason.format(what=what, other=item.row)))
    for row_id, row, other in ((item.row_id, item.row, first_row), (first_id, first_row, item.row)):
        entry = pending.get(row_id, item)
        pending[row_id] = UnsentRow(entry.kind, row_id, entry.file, entry.sheet, row, entry.key, entry.title,
                                    "invalid", f"duplicate key: conflicts with row {other}", entry.source)


# -- rows ----------------------------------------------------------------------------------------


def _course_item(v: dict, sheet: Sheet, row_id: str, number: int, source: dict, present: set):  # noqa: ANN202
    errors, warnings = [], []
    title = v.get("title")
    if not title:
        errors.append(("title", "", "title is required"))
    if "mangoes" not in v:
        errors.append(("mangoes", "", "at least one mango id is required"))
    external_id = v.get("external_id")
    if external_id:
        key = str(external_id)
    else:
        key = "title:" + rules.normalised_title(title or "")
        if "external_id" in present:
            warnings.append(("external_id", "", "empty external_id: the normalised title is used as the key"))
    body: dict = {"title": title or "", "mangoes": v.get("mangoes", [])}
    if "description" in v:
        body["description"] = v["description"]
    if "cover_image" in v:
        body["coverImage"] = v["cover_image"]
    settings: dict = {}
    if "validity_in_days" in v:
        settings["validityInDays"] = v["validity_in_days"]
    locked = {}
    if "mango_to_sell" in v:
        locked["mangoToSell"] = v["mango_to_sell"]
    if "mangoes_to_show_as_paid" in v:
        locked["mangoesToShowAsPaid"] = v["mangoes_to_show_as_paid"]
    if locked:
        settings["showAsLocked"] = locked
    for column, field_name in (("enable_drm", "enableDRM"), ("disable_qna", "disableQna"),
                               ("disable_comments", "disableComments")):
        if column in v:
            settings[field_name] = v[column]
    if settings:
        body["settings"] = settings
    item = PlanItem(COURSE, row_id, sheet.file, sheet.name, number, key, title or "", body, source=source)
    return item, errors, warnings


def _chapter_item(v: dict, sheet: Sheet, row_id: str, number: int, source: dict, present: set):  # noqa: ANN202
    errors = []
    chapter_id, ref, slot = v.get("chapter_id"), v.get("course_ref"), v.get("chapter_slot")
    if chapter_id and (ref or slot):
        errors.append(("chapter_id", chapter_id, "give either chapter_id or course_ref + chapter_slot, not both"))
    elif not chapter_id and not (ref and slot):
        if ref or slot:
            missing = "chapter_slot" if ref else "course_ref"
            errors.append((missing, "", f"{missing} is needed together with {'course_ref' if ref else 'chapter_slot'}"))
        else:
            errors.append(("chapter_id", "", "which chapter? give chapter_id, or course_ref + chapter_slot"))
    if ("content" in v) != ("content_type" in v):
        have, lack = ("content", "content_type") if "content" in v else ("content_type", "content")
        errors.append((lack, "", f"{have} and {lack} must be given together"))
    body: dict = {}
    for column, field_name in (("title", "title"), ("description", "description"), ("content", "content"),
                               ("content_type", "contentType"), ("is_free", "isFree"),
                               ("embedded_link", "embeddedLink"), ("additional_contents", "additionalContents")):
        if column in v:
            body[field_name] = v[column]
    if not body:
        errors.append((None, "", "nothing to update: every field of this chapter row is empty"))
    key = f"chapter:{chapter_id}" if chapter_id else f"ref:{ref}:{slot}"
    title = v.get("title") or (f"{ref} / {slot}" if ref else str(chapter_id or ""))
    item = PlanItem(CHAPTER, row_id, sheet.file, sheet.name, number, key, title, body, chapter_id=chapter_id,
                    course_ref=ref, chapter_slot=slot, source=source)
    return item, errors, []


def _link_chapters(plan: Plan, course_keys: dict[str, PlanItem]) -> None:
    """Point course_ref chapters at the course row they need, by external_id or by title."""
    by_title = {k.removeprefix("title:"): item for k, item in course_keys.items() if k.startswith("title:")}
    invalid_courses = {u.key: u for u in plan.unsent if u.kind == COURSE and u.state == "invalid"}
    keep = []
    for item in plan.items:
        if item.kind != CHAPTER or not item.course_ref:
            keep.append(item)
            continue
        course = course_keys.get(item.course_ref) or by_title.get(rules.normalised_title(item.course_ref))
        if course is not None:
            item.depends_on = course.row_id
            item.course_ref = course.key
            item.key = f"ref:{course.key}:{item.chapter_slot}"
            keep.append(item)
            continue
        bad = invalid_courses.get(item.course_ref)
        if bad is not None:
            reason = f"refers to course {item.course_ref!r} on row {bad.row}, which is invalid"
            plan.problems.append(Problem(item.file, item.sheet, item.row, "course_ref", shorten(item.course_ref),
                                         ERROR, reason))
            plan.unsent.append(UnsentRow(item.kind, item.row_id, item.file, item.sheet, item.row, item.key, item.title,
                                         "invalid", f"course_ref: {reason}", item.source))
            continue
        plan.problems.append(Problem(item.file, item.sheet, item.row, "course_ref", shorten(item.course_ref), WARNING,
                                     "not a course in this import; it must have been created by an earlier import to "
                                     "the same host (checked when the import runs)"))
        keep.append(item)
    plan.items = keep
