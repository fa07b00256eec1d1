"""The mode policy of matching, against a TagMango held in memory: what each row becomes, and what is read.

Pure logic: plans are built from small CSV files, TagMango is a ``LiveCatalog`` stand-in (``Catalog``) that
counts its reads, and the ledger a dict. The same against the sandbox over HTTP is tests/test_modes.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.ingest.validate import Options, build_plan
from importer.matching import diffview
from importer.matching.reconcile import reconcile
from tasks import operations
from tasks.adopt import fingerprint
from tasks.rows import ErrorCode, RowState
from tests.helpers import MANGO

HEADER = "course_ref,course_title,course_description,mangoes,module_title,chapter_title,chapter_description"


def oid(name: str) -> str:
    """A 24-character hexadecimal id made from a short name (ids in files must look like TagMango's)."""
    return name.encode().hex().ljust(24, "0")


class Catalog:
    """What ``LiveCatalog`` answers, from objects in memory: ``courses(mangoes)`` (one listing per set of mangoes)
    and ``titled(mangoes, title)`` (its courses of that title), ``course``/``module``/``chapter`` by id (None: not
    there), and ``reads``, the requests the real one makes."""

    def __init__(self, objects: dict[str, dict]) -> None:
        self.objects = objects
        self.reads = 0
        self.read_ids: list[str] = []
        self.listings: dict[tuple[str, ...], list[dict]] = {}

    def courses(self, mangoes: list[str]) -> list[dict]:
        key = tuple(sorted(mangoes))
        if key not in self.listings:
            self.reads += 1  # one page holds them all here
            self.listings[key] = [{"_id": i, "title": c["title"].strip(), "d": fingerprint(c.get("description")),
                                   "c": c.get("coverImage")} for i, c in self.objects.items()
                                  if "mangoes" in c and set(c["mangoes"]) & set(mangoes)]
        return self.listings[key]

    def titled(self, mangoes: list[str], title: str) -> list[dict]:
        return [c for c in self.courses(mangoes) if c["title"] == title.strip()]

    def _read(self, object_id: str) -> dict | None:
        self.reads += 1
        self.read_ids.append(object_id)
        found = self.objects.get(object_id)
        return None if found is None else {"_id": object_id, **found}

    course = module = chapter = _read


class Ledger:
    """The two questions matching asks the ledger."""

    def __init__(self, entries: dict | None = None, claimed: set[str] = frozenset()) -> None:
        self.entries, self.claimed = entries or {}, claimed

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def is_claimed(self, object_id: str) -> bool:
        return object_id in self.claimed


def watercolour() -> dict[str, dict]:
    """Course 'Watercolour': Materials (Paper, Brushes, Paint) and Washes (Flat)."""
    return {
        oid("c1"): {"title": "Watercolour", "description": "About", "mangoes": [MANGO],
                    "modules": [oid("m1"), oid("m2")]},
        oid("m1"): {"title": "Materials", "chapters": [oid("h1"), oid("h2"), oid("h3")]},
        oid("m2"): {"title": "Washes", "chapters": [oid("h4")]},
        oid("h1"): {"title": "Paper", "description": "p"},
        oid("h2"): {"title": "Brushes", "description": "b"},
        oid("h3"): {"title": "Paint", "description": "c"},
        oid("h4"): {"title": "Flat", "description": "f"},
    }


def tree(tmp_path: Path, *lessons: str, description: str = "About") -> Path:
    """A curriculum of course K1 'Watercolour', one ``module,lesson`` per argument."""
    path = tmp_path / "tree.csv"
    rows = [f"K1,Watercolour,{description},{MANGO},{lesson},d{n}" for n, lesson in enumerate(lessons)]
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def match(files: list[Path] | Path, mode: str, objects: dict | None = None, ledger: Ledger | None = None):
    plan = build_plan(files if isinstance(files, list) else [files], Options())
    assert plan.ok, plan.errors
    catalog = Catalog(watercolour() if objects is None else objects)
    reconciled = reconcile(plan, catalog, mode, ledger)
    rows = {r.key: r for r in [*plan.rows, *plan.unsent]}
    return plan, reconciled, catalog, rows


def same_descriptions(objects: dict) -> dict:
    """The lessons' descriptions as the file ``tree`` gives them (d0, d1...), so only titles differ."""
    for n, chapter in enumerate((oid("h1"), oid("h2"), oid("h3"))):
        objects[chapter]["description"] = f"d{n}"
    return objects


def test_an_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown mode 'upsert'"):
        match(tree(tmp_path, "Materials,Paper"), "upsert")


def test_create_mode_skips_what_exists_without_reading_lessons(tmp_path):
    plan, reconciled, catalog, rows = match(tree(tmp_path, "Materials,Paper", "Materials,Brushes", "Washes,New"),
                                            "create")
    assert {k: (r.state, r.outcome) for k, r in rows.items()} == {
        "K1": (RowState.SKIPPED, "exists"), "K1/m1": (RowState.SKIPPED, "exists"),
        "K1/m1/c1": (RowState.SKIPPED, "exists"), "K1/m1/c2": (RowState.SKIPPED, "exists"),
        "K1/m2": (RowState.SKIPPED, "exists"), "K1/m2/c1": (RowState.SKIPPED, "exists")}
    assert rows["K1/m1/c2"].result == {"course_id": oid("c1"), "module_id": oid("m1"), "chapter_id": oid("h2")}
    assert catalog.reads == reconciled.reads == 1 + 1 + 2  # Get Courses, the course, its two modules
    assert not plan.rows and len(plan.unsent) == 6
    assert any("1 lesson(s) at the end of module 'Materials'" in text for _, text in reconciled.warnings)


def test_merge_sends_only_what_changed_and_creates_what_is_new(tmp_path):
    objects = same_descriptions(watercolour())
    files = tree(tmp_path, "Materials,Paper", "Materials,Good brushes", "Materials,Paint", "Materials,Glue",
                 description="About watercolour")
    plan, reconciled, catalog, rows = match(files, "merge", objects)
    course, renamed, new = rows["K1"], rows["K1/m1/c2"], rows["K1/m1/c4"]
    assert course.op == operations.update_for("course").name and course.body == {"description": "About watercolour"}
    assert course.diff == {"description": ["About", "About watercolour"]} and course.released and course.ids == {
        "course_id": oid("c1")}
    assert renamed.op == operations.update_for("chapter").name and renamed.body == {"title": "Good brushes"}
    assert renamed.ids == {"course_id": oid("c1"), "module_id": oid("m1"), "chapter_id": oid("h2")}
    assert not renamed.placed_by_parent and renamed.outcome == "update"
    assert (rows["K1/m1/c1"].state, rows["K1/m1/c1"].outcome) == (RowState.SKIPPED, "unchanged")
    assert new.op == operations.create_for("chapter").name and new.placed_by_parent and new.state is RowState.QUEUED
    assert rows["K1/m1"].outcome == "unchanged"
    assert [r.key for r in plan.rows] == ["K1", "K1/m1/c2", "K1/m1/c4"]
    assert catalog.reads == 1 + 1 + 1 + 3  # Get Courses, the course, its module, each existing lesson once
    assert any("1 module(s) of 'K1' in TagMango are not in the file: left alone" in t for _, t in reconciled.warnings)


def test_the_ledger_spares_reading_a_lesson_the_importer_wrote(tmp_path):
    from tasks.ledger import content_hash

    files = tree(tmp_path, "Materials,Paper", "Materials,Brushes", "Materials,Paint")
    plan = build_plan([files], Options())
    written = {f"chapter:{oid('h1')}": {"content": content_hash(next(r for r in plan.rows if r.key == "K1/m1/c1")
                                                                    .body)}}
    _, _, catalog, rows = match(files, "merge", same_descriptions(watercolour()), Ledger(written))
    assert oid("h1") not in catalog.read_ids and oid("h2") in catalog.read_ids
    assert rows["K1/m1/c1"].reason.startswith("unchanged since this importer wrote it")


def test_update_mode_creates_nothing(tmp_path):
    path = tmp_path / "tree.csv"
    lessons = [f"K1,Watercolour,About,{MANGO},Washes,{title},d" for title in ("Flat", "Graded", "Wet", "Dry")]
    path.write_text(HEADER + "\n" + "\n".join([*lessons, f"K9,Brand new,x,{MANGO},M,L,d"]) + "\n")
    # K1's first module is 'Materials' in TagMango: the position, not the title, says which module a row is
    plan, _, _, rows = match(path, "update")
    dead = {k: r.error.code for k, r in rows.items() if r.state is RowState.DEAD}
    assert dead == {key: ErrorCode.NOT_IN_TAGMANGO for key in ("K1/m1/c4", "K9", "K9/m1", "K9/m1/c1")}
    assert rows["K1/m1"].body == {"title": "Washes"} and rows["K1/m1"].diff == {"title": ["Materials", "Washes"]}
    assert {r.key for r in plan.rows} == {"K1/m1", "K1/m1/c1", "K1/m1/c2", "K1/m1/c3"}  # updates, nothing created


def test_replace_deletes_the_lessons_at_the_end_of_a_module(tmp_path):
    _, reconciled, _, rows = match(tree(tmp_path, "Materials,Paper", "Washes,Flat"), "replace",
                                   same_descriptions(watercolour()))
    deletes = [r for r in rows.values() if r.key.startswith("delete:")]
    assert [(r.op, r.title, r.ids) for r in deletes] == [
        (operations.delete_for("chapter").name, "Brushes",
         {"course_id": oid("c1"), "module_id": oid("m1"), "chapter_id": oid("h2")}),
        (operations.delete_for("chapter").name, "Paint",
         {"course_id": oid("c1"), "module_id": oid("m1"), "chapter_id": oid("h3")})]
    assert all(r.place.course_key == "K1" and not r.placed_by_parent and r.outcome == "delete" for r in deletes)
    assert diffview.action(deletes[0]) == "delete" and not reconciled.warnings


def test_replace_deletes_a_module_the_file_no_longer_has_with_its_lessons(tmp_path):
    plan, reconciled, catalog, _ = match(tree(tmp_path, "Materials,Paper", "Materials,Brushes", "Materials,Paint"),
                                         "replace", same_descriptions(watercolour()))
    [gone] = [r for r in plan.rows if r.key.startswith("delete:")]
    assert (gone.op, gone.kind, gone.title) == (operations.delete_for("module").name, "module", "Washes")
    # its lessons go with it; should TagMango have no Delete Module, the row deletes them itself
    assert gone.ids == {"course_id": oid("c1"), "module_id": oid("m2"), "chapter_ids": [oid("h4")]}
    assert oid("h4") not in catalog.read_ids and not reconciled.warnings
    assert "  - delete module 'Washes' (not in the file); if TagMango has no Delete Module, its lessons are deleted " \
           "and the module kept" in diffview.lines(plan, reconciled)
    assert plan.summary()["modules_to_delete"] == 1 and plan.summary()["chapters_to_delete"] == 0


def test_replace_without_a_delete_module_deletes_a_module_s_lessons_and_keeps_it(tmp_path, monkeypatch):
    real = operations.delete_for
    monkeypatch.setattr(operations, "delete_for", lambda kind: None if kind == "module" else real(kind))
    plan, reconciled, _, rows = match(tree(tmp_path, "Materials,Paper", "Materials,Brushes", "Materials,Paint"),
                                      "replace", same_descriptions(watercolour()))
    deletes = [r for r in plan.rows if r.key.startswith("delete:")]
    assert [(r.op, r.title) for r in deletes] == [(operations.delete_for("chapter").name, "Flat")]
    assert [t for _, t in reconciled.warnings] == ["module 'Washes' of 'K1' is not in the file: its chapters are "
                                                  "deleted, the module itself stays (TagMango documents no Delete "
                                                  "Module)"]


def test_a_lesson_new_in_the_middle_is_said(tmp_path):
    _, reconciled, _, rows = match(tree(tmp_path, "Materials,Paper", "Materials,Glue", "Materials,Brushes",
                                        "Materials,Paint"), "merge")
    assert rows["K1/m1/c2"].diff["title"] == ["Brushes", "Glue"]
    assert any("lesson 'Glue' (row 3) is new in the middle of module 'Materials'" in t
               for _, t in reconciled.warnings)


def test_chapter_patches_are_sent_only_when_they_change_something_in_every_mode(tmp_path):
    cdn = "https://cdn.tagmango.com/v"
    objects = {oid("h1"): {"title": "Paper", "content": f"{cdn}/a.mp4", "contentType": "video"},
               oid("h2"): {"title": "Brushes"}}
    path = tmp_path / "chapters.csv"
    path.write_text("chapter_id,title,content,content_type\n"
                    f"{oid('h1')},Paper,{cdn}/b.mp4,video\n{oid('h2')},Brushes,,\n{oid('zz')},Gone,,\n")
    for mode in ("create", "merge"):
        _, _, _, rows = match(path, mode, objects)
        changed, same, gone = (rows[f"chapter:{oid(n)}"] for n in ("h1", "h2", "zz"))
        # content and its type go together (TagMango's rule), even if only the URL changed
        assert changed.body == {"content": f"{cdn}/b.mp4", "contentType": "video"} and changed.result is None
        assert (same.state, same.outcome, same.result) == (RowState.SKIPPED, "unchanged", {"chapter_id": oid("h2")})
        assert gone.state is RowState.DEAD and gone.error.code == "CHAPTER_NOT_FOUND"


def test_courses_are_known_by_id_ledger_or_title_and_an_ambiguous_title_is_dead(tmp_path):
    objects = {oid("c1"): {"title": "Same", "description": "a", "mangoes": [MANGO]},
               oid("c2"): {"title": "Same", "description": "b", "mangoes": [MANGO]},
               oid("c3"): {"title": "Other", "description": "", "mangoes": [MANGO]}}
    path = tmp_path / "courses.csv"
    path.write_text(f"external_id,title,mangoes,description,course_id\nB,Same,{MANGO},zzz,\nA,Same,{MANGO},b,\n"
                    f"C,Same,{MANGO},zzz,{oid('c1')}\nD,Other,{MANGO},,\n")
    _, reconciled, catalog, rows = match(path, "create", objects, Ledger({"D": {"ids": {"course_id": oid("c3")}}}))
    assert rows["C"].result["course_id"] == oid("c1") and "found by its course_id" in rows["C"].reason
    assert rows["A"].result["course_id"] == oid("c2") and "found by its title" in rows["A"].reason  # by description
    assert rows["B"].state is RowState.DEAD and rows["B"].error.code == ErrorCode.AMBIGUOUS_COURSE
    assert rows["D"].result["course_id"] == oid("c3") and "found by the ledger" in rows["D"].reason
    # create mode on a flat file reads the pinned course and one listing; the others' ids are enough
    assert catalog.reads == reconciled.reads == 2
