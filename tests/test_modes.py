"""TagMango is the truth, Redis a cache: matching against the live catalog, and the modes.

Each test imports into the sandbox (rows run in the test process), then "loses" Redis (a new, empty one, as
from another folder or machine) and imports again, counting what reached TagMango in the sandbox's stats:
reads (GETs, empty PATCHes) and writes (POST, PATCH with fields, DELETE).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.ingest.validate import Options, build_plan
from importer.matching import match_live
from importer.matching.diffview import action, lines
from importer.report.follow import exit_code, snapshot
from tasks import operations
from tasks.client import TagMangoClient
from tasks.credentials import Credential
from tasks.enqueue import enqueue
from tasks.rows import ErrorCode, RowState
from tests.helpers import HOST, MANGO, SAMPLES, TOKEN, run_in_process

HEADER = "course_ref,course_title,course_description,mangoes,module_title,chapter_title,chapter_description"


@pytest.fixture
def importer(redis_server, services_factory, sandbox):
    """``importer.run(files, mode)`` imports like ``run`` does (match, enqueue, run the rows) and returns the job's
    rows; ``importer.lose_redis()`` empties Redis as a new folder would."""

    class Importer:
        def __init__(self) -> None:
            self.services = services_factory(rate_limit=1000)
            self.store = self.services.store
            self.cred = Credential(sandbox.url, HOST, TOKEN)

        def plan(self, files: list[Path], mode: str = "create", options: Options | None = None):
            plan = build_plan(files, options or Options())
            assert plan.ok, plan.errors[:3]
            return plan, match_live(self.services.gateway.door(self.cred), self.store, plan, mode, quiet=True)

        def run(self, files: list[Path], mode: str = "create", options: Options | None = None) -> dict:
            plan, _ = self.plan(files, mode, options)
            job = enqueue(self.store, plan, sandbox.url, HOST, mode=mode)
            run_in_process(self.services, job)
            return {r.row_id: r for r in self.store.rows(job)}

        def lose_redis(self) -> None:
            redis_server.client().flushall()

    return Importer()


def write(tmp_path: Path, rows: list[str], name: str = "tree.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def tree_of(sandbox) -> list:
    return [(c["title"], c["description"], [(m["title"], [(ch["title"], ch["description"]) for ch in m["chapters"]])
                                            for m in c["modules"]]) for c in sandbox.tree(HOST)]


BASE = [f"K1,Watercolour,About,{MANGO},Materials,Paper,p", f"K1,Watercolour,About,{MANGO},Materials,Brushes,b",
        f"K1,Watercolour,About,{MANGO},Materials,Paint,c", f"K1,Watercolour,About,{MANGO},Washes,Flat,f",
        f"K1,Watercolour,About,{MANGO},Washes,Graded,g", f"K2,Ink,Lines,{MANGO},Pens,Nibs,n"]


def test_a_second_run_of_a_flat_file_with_an_empty_redis_writes_nothing(importer, sandbox):
    first = importer.run([SAMPLES / "catalog_fixed.xlsx"])
    assert {r.state for r in first.values()} == {RowState.SUCCEEDED}
    before = sandbox.stats()
    importer.lose_redis()
    again = importer.run([SAMPLES / "catalog_fixed.xlsx"])
    after = sandbox.stats()
    assert after["writes"] == before["writes"] and after["writes_by_route"] == before["writes_by_route"]
    assert {r.state for r in again.values()} == {RowState.SKIPPED}
    assert {r.outcome for r in again.values()} == {"exists", "unchanged"}
    courses = {c["title"]: c["_id"] for c in sandbox.data(HOST)["course"]}
    assert len(courses) == 20
    for row in again.values():  # the found ids are reported
        if row.kind == "course":
            assert row.result["course_id"] == courses[row.title] and "found by its title" in row.reason


def test_a_second_run_of_a_tree_with_an_empty_redis_writes_nothing(importer, sandbox, tmp_path):
    f = write(tmp_path, BASE)
    importer.run([f])
    tree, before = tree_of(sandbox), sandbox.stats()
    importer.lose_redis()
    again = importer.run([f])
    assert sandbox.stats()["writes"] == before["writes"] and tree_of(sandbox) == tree
    assert {(r.state, r.outcome) for r in again.values()} == {(RowState.SKIPPED, "exists")}
    assert len(again) == 2 + 3 + 6  # every row of the file (and the course/module rows made from them)


def test_merge_makes_exactly_the_writes_the_edits_need_and_replace_deletes(importer, sandbox, tmp_path):
    importer.run([write(tmp_path, BASE)])
    importer.lose_redis()
    edited = [f"K1,Watercolour,About watercolour,{MANGO},Materials,Paper,p",  # course description
              f"K1,Watercolour,About watercolour,{MANGO},Materials,Good brushes,b",  # lesson title
              # Paint removed
              f"K1,Watercolour,About watercolour,{MANGO},Washes,Flat wash,f",  # lesson title
              f"K1,Watercolour,About watercolour,{MANGO},Washes,Graded,g",
              f"K1,Watercolour,About watercolour,{MANGO},Washes,Wet in wet,w",  # added at the end of a module
              f"K1,Watercolour,About watercolour,{MANGO},Glazing,Layers,l",  # a new module at the end
              f"K2,Ink,Lines,{MANGO},Pens,Nibs,n"]
    f = write(tmp_path, edited, "edited.csv")
    before = sandbox.stats()
    plan, reconciled = importer.plan([f], "merge")
    text = "\n".join(lines(plan, reconciled))
    assert "description 'About' → 'About watercolour'" in text and "title 'Brushes' → 'Good brushes'" in text
    assert sandbox.stats()["writes"] == before["writes"]  # the dry run wrote nothing
    rows = importer.run([f], "merge")
    writes = {k: v - before["writes_by_route"].get(k, 0) for k, v in sandbox.stats()["writes_by_route"].items()}
    assert {k: v for k, v in writes.items() if v} == {"update_course": 1, "update_chapter": 2, "create_chapter": 2,
                                                      "create_module": 1}
    outcomes = sorted(r.outcome for r in rows.values() if r.outcome and r.outcome.startswith(("updated", "created")))
    assert outcomes == ["created", "created", "created", "updated (description)", "updated (title)",
                        "updated (title)"]
    [(_, description, modules), _] = tree_of(sandbox)
    assert description == "About watercolour"
    assert [(m, [t for t, _ in ch]) for m, ch in modules] == [
        ("Materials", ["Paper", "Good brushes", "Paint"]),  # the removed lesson is left alone by merge...
        ("Washes", ["Flat wash", "Graded", "Wet in wet"]), ("Glazing", ["Layers"])]
    importer.lose_redis()
    before = sandbox.stats()
    importer.run([f], "replace")  # ...and deleted by replace
    writes = {k: v - before["writes_by_route"].get(k, 0) for k, v in sandbox.stats()["writes_by_route"].items()}
    assert {k: v for k, v in writes.items() if v} == {"delete_chapter": 1}
    assert [t for t, _ in tree_of(sandbox)[0][2][0][1]] == ["Paper", "Good brushes"]


def test_update_mode_only_updates_and_names_what_does_not_exist(importer, sandbox, tmp_path):
    importer.run([write(tmp_path, BASE[:1])])
    rows = importer.run([write(tmp_path, [BASE[0].replace(",p", ",new text"), f"K9,Brand new,x,{MANGO},M,L,d"],
                               "upd.csv")], "update")
    dead = {r.row_id: r.error.code for r in rows.values() if r.state is RowState.DEAD}
    assert set(dead.values()) == {ErrorCode.NOT_IN_TAGMANGO} and len(dead) == 3  # K9's course, module and lesson
    assert [c["title"] for c in sandbox.data(HOST)["course"]] == ["Watercolour"]
    assert sandbox.tree(HOST)[0]["modules"][0]["chapters"][0]["description"] == "new text"


def test_two_courses_with_the_same_title_are_ambiguous_until_a_course_id_picks_one(importer, sandbox, tmp_path):
    for name, ref in (("a.csv", "A"), ("b.csv", "B")):  # two creators' courses that happen to share a title
        importer.run([tmp_path.joinpath(name).write_text(f"external_id,title,mangoes\n{ref},Same title,{MANGO}\n")
                      and tmp_path / name])
    importer.lose_redis()
    f = tmp_path / "c.csv"
    f.write_text(f"external_id,title,mangoes,description\nC,Same title,{MANGO},new\n")
    rows = importer.run([f], "merge")
    [row] = rows.values()
    assert row.state is RowState.DEAD and row.error.code == ErrorCode.AMBIGUOUS_COURSE
    assert "course_id" in row.error.message
    chosen = sandbox.data(HOST)["course"][1]["_id"]
    f.write_text(f"external_id,title,mangoes,description,course_id\nC,Same title,{MANGO},new,{chosen}\n")
    [row] = importer.run([f], "merge").values()
    assert row.outcome == "updated (description)" and row.result["course_id"] == chosen
    assert sum(1 for c in sandbox.data(HOST)["course"]) == 2


GALLERY = [f"K1,Watercolour,About,{MANGO},Gallery,One,o", f"K1,Watercolour,About,{MANGO},Gallery,Two,t"]


def writes_since(sandbox, before: dict) -> dict:
    writes = {k: v - before["writes_by_route"].get(k, 0) for k, v in sandbox.stats()["writes_by_route"].items()}
    return {k: v for k, v in writes.items() if v}


def test_replace_deletes_a_module_that_left_the_file_with_delete_module(importer, sandbox, tmp_path):
    importer.run([write(tmp_path, BASE + GALLERY)])
    importer.lose_redis()
    sandbox.configure(delete_module=True)
    f = write(tmp_path, BASE, "without_gallery.csv")
    plan, reconciled = importer.plan([f], "replace")
    assert "  - delete module 'Gallery' (not in the file); if TagMango has no Delete Module, its lessons are deleted " \
           "and the module kept" in lines(plan, reconciled)
    before = sandbox.stats()
    rows = importer.run([f], "replace")
    # one request deletes the module and its two lessons: no Delete Chapter for them
    assert writes_since(sandbox, before) == {"delete_module": 1}
    [gone] = [r for r in rows.values() if r.op == operations.delete_for("module").name]
    assert (gone.state, gone.outcome, gone.result["deleted"]) == (RowState.SUCCEEDED, "deleted", True)
    assert [(m, [t for t, _ in ch]) for m, ch in tree_of(sandbox)[0][2]] == [
        ("Materials", ["Paper", "Brushes", "Paint"]), ("Washes", ["Flat", "Graded"])]
    stats = sandbox.stats()["objects_by_host"][HOST]
    assert stats["deleted_chapters"] - before["objects_by_host"][HOST]["deleted_chapters"] == 2


def test_a_module_already_deleted_counts_as_deleted(importer, sandbox, tmp_path):
    importer.run([write(tmp_path, BASE + GALLERY)])
    importer.lose_redis()
    sandbox.configure(delete_module=True)
    plan, _ = importer.plan([write(tmp_path, BASE, "without_gallery.csv")], "replace")
    [row] = [r for r in plan.rows if r.op == operations.delete_for("module").name]
    client = TagMangoClient(sandbox.url, TOKEN, HOST)
    assert client.delete_module(row.ids["module_id"])  # as an earlier attempt whose answer was lost
    client.close()
    job = enqueue(importer.store, plan, sandbox.url, HOST, mode="replace")
    run_in_process(importer.services, job)
    done = importer.store.row(job, row.row_id)
    assert (done.state, done.outcome) == (RowState.SUCCEEDED, "deleted")


def test_replace_without_delete_module_deletes_the_lessons_and_keeps_the_module(importer, sandbox, tmp_path):
    importer.run([write(tmp_path, BASE + GALLERY)])
    importer.lose_redis()
    before = sandbox.stats()  # Delete Module off (TagMango does not document it): a path the sandbox does not have
    job_rows = importer.run([write(tmp_path, BASE, "without_gallery.csv")], "replace")
    assert writes_since(sandbox, before) == {"delete_chapter": 2}
    [kept] = [r for r in job_rows.values() if r.op == operations.delete_for("module").name]
    assert (kept.state, kept.outcome) == (RowState.SKIPPED, "kept") and kept.error is None
    assert kept.reason == "TagMango has no Delete Module (it does not document one): the module's 2 lesson(s) were " \
                          "deleted and the module kept"
    assert [(m, [t for t, _ in ch]) for m, ch in tree_of(sandbox)[0][2]] == [
        ("Materials", ["Paper", "Brushes", "Paint"]), ("Washes", ["Flat", "Graded"]), ("Gallery", [])]
    assert exit_code(snapshot(importer.store, importer.store.latest_job())) == 0  # nothing failed


def test_a_tagmango_without_delete_module_is_asked_once_not_once_per_module(importer, sandbox, tmp_path):
    extra = [f"K1,Watercolour,About,{MANGO},{m},Lesson of {m},x" for m in ("Gallery", "Studio", "Sketches")]
    importer.run([write(tmp_path, BASE + extra)])
    importer.lose_redis()
    before = sandbox.stats()
    job_rows = importer.run([write(tmp_path, BASE, "without_three.csv")], "replace")
    assert writes_since(sandbox, before) == {"delete_chapter": 3}
    kept = [r for r in job_rows.values() if r.op == operations.delete_for("module").name]
    assert [(r.state, r.outcome) for r in kept] == [(RowState.SKIPPED, "kept")] * 3
    # 1 Delete Module (answered as a route TagMango does not have, counted nowhere by the sandbox) + 3 Delete Chapter
    assert importer.store.counts(importer.store.latest_job())["n_requests"] == 4


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared/data/course_trees").exists(),
                    reason="shared data not present")
def test_merge_dry_run_of_the_six_real_courses_reads_a_bounded_number_of_times(importer, sandbox, monkeypatch):
    sandbox.configure(rate_limit=100_000)  # this test counts requests; the limit's pacing is tested elsewhere
    monkeypatch.setenv("TAGMANGO_RATE_LIMIT", "100000")
    files = sorted((Path(__file__).resolve().parents[2] / "shared/data/course_trees").glob("*.csv"))
    options = Options(constants={"mangoes": MANGO, "chapter_description": "See the lesson."})
    importer.run(files, options=options)
    importer.lose_redis()
    reads = sandbox.stats()["reads"]
    plan, reconciled = importer.plan(files, "merge", options)
    # one Get Courses page, 6 courses, 35 modules and 185 chapters read back: nothing else
    assert reconciled.reads == sandbox.stats()["reads"] - reads == 1 + 6 + 35 + 185
    assert {action(r) for r in plan.unsent} == {"unchanged"} and not plan.rows
