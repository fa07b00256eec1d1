"""Whole course trees from a curriculum sheet: the plan and its checks, and the tree TagMango ends up with.

The plan tests are pure. The import tests run rows in the test process (tests.helpers.run_in_process) against
the suite's Redis and the sandbox over HTTP; the six real courses of ../shared/data/course_trees go through
real Celery workers with faults in tests/test_tree_import.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.ingest.validate import Options, build_plan
from tasks.enqueue import enqueue
from tasks.requeue import requeue_rows
from tasks.rows import ErrorCode, RowState
from tests.helpers import HOST, MANGO, run_in_process

HEADER = "course_ref,course_title,mangoes,module_title,chapter_title,chapter_description"
CDN = "https://cdn.tagmango.com/v"


def write(tmp_path: Path, text: str, name: str = "tree.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def reasons(plan, column: str | None = None) -> list[str]:
    return [f"{p.row}:{p.reason}" for p in plan.errors if column is None or p.column == column]


# -- the plan -------------------------------------------------------------------------------------------


def test_rows_per_lesson_make_a_course_its_modules_and_lessons_in_order(tmp_path):
    f = write(tmp_path, HEADER + "\n" + "\n".join([
        f"K1,Watercolour,{MANGO},Basics,Paper,About paper",
        f"K1,Watercolour,{MANGO},Basics,Brushes,About brushes",
        f"K1,Watercolour,{MANGO},Basics,Paper,Paper again",  # a title repeated in the module: its own lesson
        f"K1,Watercolour,{MANGO},Practice,,",  # an empty module
        f"K1,Watercolour,{MANGO},Colour,Mixing,About mixing",
    ]) + "\n")
    plan = build_plan([f])
    assert plan.ok, plan.errors
    ops = [(r.op, r.key, r.title) for r in plan.rows]
    assert ops == [("create_course", "K1", "Watercolour"),
                   ("create_module", "K1/m1", "Basics"), ("create_chapter", "K1/m1/c1", "Paper"),
                   ("create_chapter", "K1/m1/c2", "Brushes"), ("create_chapter", "K1/m1/c3", "Paper"),
                   ("create_module", "K1/m2", "Practice"), ("create_module", "K1/m3", "Colour"),
                   ("create_chapter", "K1/m3/c1", "Mixing")]
    by_key = {r.key: r for r in plan.rows}
    assert by_key["K1/m2"].parent == by_key["K1/m1"].row_id and by_key["K1/m1/c2"].parent == by_key["K1/m1/c1"].row_id
    assert by_key["K1/m1"].place.lessons == 3 and by_key["K1/m2"].place.lessons == 0
    assert by_key["K1/m2"].row_id == "tree:5" and not by_key["K1/m2"].derived  # the empty module is its own line
    assert by_key["K1"].derived and by_key["K1"].body == {"title": "Watercolour", "mangoes": [MANGO]}
    s = plan.summary()
    assert (s["courses_to_create"], s["modules_to_create"], s["chapters_to_create"]) == (1, 3, 4)


def test_positions_order_rows_given_in_any_order(tmp_path):
    header = HEADER + ",module_position,chapter_position"
    rows = [f"K1,C,{MANGO},Two,B2,d,2,2", f"K1,C,{MANGO},One,A1,d,1,1", f"K1,C,{MANGO},Two,B1,d,2,1",
            f"K1,C,{MANGO},One,A2,d,1,2"]
    plan = build_plan([write(tmp_path, header + "\n" + "\n".join(rows) + "\n")])
    assert plan.ok, plan.errors
    assert [r.title for r in plan.rows] == ["C", "One", "A1", "A2", "Two", "B1", "B2"]


def test_the_dry_run_checks_the_whole_tree(tmp_path):
    header = HEADER + ",module_position,chapter_position,content,content_type"
    rows = [f"K1,Course,{MANGO},One,A,d,1,1,,",
            f"K1,Other title,{MANGO},One,B,d,1,1,,",  # 3: course title conflict + duplicate lesson position
            f"K1,Course,{MANGO},Three,C,d,3,1,,",  # 4: module position 2 missing
            f"K1,Course,{MANGO},Three,D,,3,3,{CDN}/a.mp4,",  # 5: no description, lesson 2 missing, no type
            f"K2,Second,{MANGO},,E,d,,,,"]  # 6: a lesson without a module (and no module_position)
    plan = build_plan([write(tmp_path, header + "\n" + "\n".join(rows) + "\n")])
    assert not plan.ok
    assert any(r.startswith("3:differs from row 2") for r in reasons(plan, "course_title"))
    assert any(r.startswith("3:lesson 1 of module 1 is also on row 2") for r in reasons(plan, "chapter_position"))
    assert any("position(s) 2 missing" in r for r in reasons(plan, "module_position"))
    assert any(r.startswith("5:module 3 of 'K1' has no lesson at position(s) 2") for r in reasons(plan,
                                                                                                  "chapter_position"))
    assert any(r.startswith("5:") and "--set chapter_description=" in r for r in reasons(plan, "chapter_description"))
    assert any(r.startswith("5:content and content_type") for r in reasons(plan, "content_type"))
    assert any(r.startswith("6:empty") for r in reasons(plan, "module_position"))
    assert not plan.rows and len(plan.unsent) == 5 and all(u.state is RowState.INVALID for u in plan.unsent)


def test_a_lesson_needs_a_module_and_a_module_title_cannot_come_back(tmp_path):
    rows = [f"K1,C,{MANGO},,Orphan,d", f"K2,C2,{MANGO},A,L1,d", f"K2,C2,{MANGO},B,L2,d", f"K2,C2,{MANGO},A,L3,d"]
    plan = build_plan([write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")])
    assert any(r.startswith("2:a lesson needs a module") for r in reasons(plan, "module_title"))
    assert any(r.startswith("5:module 'A' already started on row 3") for r in reasons(plan, "module_title"))


def test_set_gives_every_empty_description_a_default(tmp_path):
    f = write(tmp_path, HEADER + f"\nK1,C,{MANGO},M,L1,\nK1,C,{MANGO},M,L2,Own text\n")
    assert not build_plan([f]).ok
    plan = build_plan([f], Options(constants={"chapter_description": "See the video."}))
    assert plan.ok and [r.body.get("description") for r in plan.rows[2:]] == ["See the video.", "Own text"]


def test_courses_sheet_plus_curriculum(tmp_path):
    courses = write(tmp_path, f"external_id,title,mangoes,description\nK1,Watercolour,{MANGO},About\n", "courses.csv")
    tree = write(tmp_path, "course_ref,module_title,chapter_title,chapter_description\nK1,M,L1,d\n", "curriculum.csv")
    plan = build_plan([courses, tree])
    assert plan.ok, plan.errors
    course = plan.rows[0]
    assert course.row_id == "courses:2" and not course.derived and course.body["description"] == "About"
    assert plan.rows[1].parent == "courses:2" and plan.rows[2].op == "create_chapter"


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared/data/course_trees").exists(),
                    reason="shared data not present")
def test_the_six_real_courses_plan_as_their_trees():
    folder = Path(__file__).resolve().parents[2] / "shared/data/course_trees"
    files = sorted(folder.glob("*.csv"))
    assert not build_plan(files, Options(constants={"mangoes": MANGO})).ok  # no lesson has a description
    plan = build_plan(files, Options(constants={"mangoes": MANGO, "chapter_description": "See the lesson."}))
    assert plan.ok, plan.errors[:3]
    s = plan.summary()
    assert (s["courses_to_create"], s["modules_to_create"], s["chapters_to_create"]) == (6, 35, 185)
    # Repeated titles stay separate lessons; "Module 0" is the first module.
    titles = [r.title for r in plan.rows if r.op == "create_chapter"]
    assert titles.count("Harjoittelutehtäviä (perus)") == 3
    first = next(r for r in plan.rows if r.op == "create_module" and r.title.startswith("Module 0"))
    assert first.place.module_position == 1


# -- importing a tree -----------------------------------------------------------------------------------


@pytest.fixture
def services(services_factory):
    """Retries come quickly here (the sandbox's faults are on in some tests)."""
    return services_factory(rate_limit=1000, max_attempts=8, backoff_base=0.05, backoff_max=0.2)


def tree_of(sandbox, host: str = HOST) -> list[dict]:
    """The host's courses as (title, [(module title, [lesson titles])])."""
    return [(c["title"], [(m["title"], [ch["title"] for ch in m["chapters"]]) for m in c["modules"]])
            for c in sandbox.tree(host)]


def test_a_new_course_looks_exactly_like_the_file(services, sandbox, tmp_path):
    rows = [f"K1,One lesson,{MANGO},Only,L1,d",  # first module with 1 lesson: the second placeholder goes
            f"K2,Many,{MANGO},First,A1,d", f"K2,Many,{MANGO},First,A2,d", f"K2,Many,{MANGO},First,A3,d",
            f"K2,Many,{MANGO},Second,B1,d", f"K3,Empty first,{MANGO},Intro,,", f"K3,Empty first,{MANGO},Then,C1,d"]
    job = enqueue(services.store, build_plan([write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")]), sandbox.url,
                  HOST)
    counts = run_in_process(services, job)
    assert counts["succeeded"] == counts.get("kind:course:succeeded", 0) + 6 + 8 - 3, counts
    assert tree_of(sandbox) == [("One lesson", [("Only", ["L1"])]),
                                ("Many", [("First", ["A1", "A2", "A3"]), ("Second", ["B1"])]),
                                ("Empty first", [("Intro", []), ("Then", ["C1"])])]
    stats = sandbox.stats()
    assert stats["writes_by_route"]["update_module"] == 3  # each first module took over the placeholder
    assert stats["writes_by_route"]["delete_chapter"] == 3  # 1 of K1's placeholders, both of K3's
    assert stats["writes_by_route"]["create_chapter"] == 3  # A3, B1, C1; the rest filled placeholders
    lessons = {r.row_id: r for r in services.store.rows(job)}
    a1 = lessons["tree:3"]
    assert a1.op == "update_chapter" and a1.result["module_id"] and a1.result["course_id"]


def test_a_refused_lesson_holds_the_rest_of_its_module_until_fixed(services, sandbox, tmp_path):
    header = HEADER + ",content,content_type"
    rows = [f"K1,C,{MANGO},M,L1,d,,", f"K1,C,{MANGO},M,L2,d,,", f"K1,C,{MANGO},M,L3,d,https://example.com/x.mp4,video",
            f"K1,C,{MANGO},M,L4,d,,", f"K1,C,{MANGO},M,L5,d,,"]
    f = write(tmp_path, header + "\n" + "\n".join(rows) + "\n")
    store = services.store
    job = enqueue(store, build_plan([f]), sandbox.url, HOST)
    run_in_process(services, job)
    l3, l4, l5 = (store.row(job, f"tree:{n}") for n in (4, 5, 6))
    assert l3.state is RowState.DEAD and l3.error.code == "CHAPTER_USER_ASSET_NOT_FOUND"
    assert l4.error.code == ErrorCode.DEPENDENCY_FAILED and "row tree:4 is dead (CHAPTER_USER_ASSET_NOT_FOUND" in \
        l4.error.message and l5.error.message == l4.error.message
    assert tree_of(sandbox) == [("C", [("M", ["L1", "L2"])])]  # nothing after the refused lesson
    fixed = write(tmp_path, (header + "\n" + "\n".join(rows) + "\n").replace("https://example.com/x.mp4",
                                                                             f"{CDN}/x.mp4"), "fixed.csv")
    from importer.matching.corrections import corrections_from

    corrections, problems = corrections_from(store, job, build_plan([fixed], Options()))
    assert problems == []
    out = requeue_rows(store, job, corrections=corrections)
    assert out["requeued"] == 3 and out["published"] == 1 and out["waiting_for_parent"] == 2
    run_in_process(services, job)
    assert tree_of(sandbox) == [("C", [("M", ["L1", "L2", "L3", "L4", "L5"])])]


def test_committed_but_failed_creates_are_adopted_not_repeated(services, sandbox, tmp_path):
    sandbox.configure(commit_fail_rate=0.5, hang_s=0.1)
    rows = [f"K{c},Course {c},{MANGO},M{m},L{c}{m}{n},d" for c in range(2) for m in range(3) for n in range(4)]
    job = enqueue(services.store, build_plan([write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")]), sandbox.url,
                  HOST)
    counts = run_in_process(services, job)
    assert counts.get("dead", 0) == 0 and counts["n_adopted"] > 3, counts
    expected = [(f"Course {c}", [(f"M{m}", [f"L{c}{m}{n}" for n in range(4)]) for m in range(3)]) for c in range(2)]
    assert tree_of(sandbox) == expected
    assert not sandbox.stats()["duplicate_creates"] and sandbox.stats()["faults"]["commit_fail"] > 3


def test_a_second_run_with_the_same_ledger_creates_nothing(services, sandbox, tmp_path):
    f = write(tmp_path, HEADER + f"\nK1,C,{MANGO},M,L1,d\nK1,C,{MANGO},M,L2,d\nK1,C,{MANGO},N,L3,d\n")
    run_in_process(services, enqueue(services.store, build_plan([f]), sandbox.url, HOST))
    writes = sandbox.stats()["writes"]
    again = enqueue(services.store, build_plan([f]), sandbox.url, HOST)
    counts = run_in_process(services, again)
    assert counts["skipped"] == 6 and sandbox.stats()["writes"] == writes
