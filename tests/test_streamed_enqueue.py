"""``run`` matches and writes a plan a chunk at a time (issue 23: a million rows are never held as a million
``Row``s): what the chunks share must carry across them, and the job must come out as a whole plan's would.

Real parts: the suite's Redis, the sandbox over HTTP, a Celery worker; the chunk is made 7 rows long so that a
small file spans several.
"""

from __future__ import annotations

from collections import Counter

import pytest

from importer.ingest import plan as plan_module
from importer.ingest.validate import build_plan
from importer.matching import Matching, matched_rows
from tasks.client import TagMangoClient
from tasks.credentials import Credential
from tasks.enqueue import enqueue, rows_for
from tasks.rows import ErrorCode, RowState
from tests.helpers import HOST, MANGO, TOKEN, assert_consistent, settle, wait_final, write_tree

ROWS = 40


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(plan_module, "CHUNK", 7)


def courses_file(tmp_path):
    """40 course rows: row 6 has no mangoes (invalid), row 9 repeats row 8 exactly (skipped), rows 13 and 35
    (different chunks) share a title that TagMango holds once, row 27's course is in TagMango already."""
    lines = ["external_id,title,mangoes,description"]
    for i in range(ROWS):
        number = i + 2
        title = "Twice" if number in (13, 35) else f"Course {i}"
        lines.append(f"K{i},{title},{'' if number == 6 else MANGO},About {i}")
    lines[9 - 1] = lines[8 - 1]  # row 9 repeats row 8
    path = tmp_path / "courses.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_plan_sent_in_chunks_is_matched_across_them_and_every_row_lands_once(
        small_chunks, tmp_path, services, sandbox, workers, make_env):
    client = TagMangoClient(sandbox.url, TOKEN, HOST)
    twice = client.create_course({"title": "Twice", "mangoes": [MANGO], "description": "About 11"})["_id"]
    existing = client.create_course({"title": "Course 25", "mangoes": [MANGO]})["_id"]
    client.close()
    path = courses_file(tmp_path)
    plan = build_plan([path], defer=True)
    assert plan.deferred and sum(plan.counted.values()) == ROWS - 3  # rows 6, 8, 9 drafted
    expected_order = [r.row_id for r in rows_for(build_plan([path]))]

    store = services.store
    matching = Matching(services.gateway.door(Credential(sandbox.url, HOST, TOKEN)), store, "create", quiet=True)
    job_id = enqueue(store, plan, sandbox.url, HOST, rows=matched_rows(matching, plan))
    assert (matching.to_send, matching.settled) == (ROWS - 4, 4)  # invalid, repeat, the first Twice, Course 25
    assert store.r.lrange(store.k(job_id, "order"), 0, -1) == expected_order
    assert store.job(job_id).total == ROWS

    workers.start(make_env(sandbox), 1)
    wait_final(store, job_id)
    states = assert_consistent(store, job_id)
    assert states == Counter({"succeeded": ROWS - 4, "skipped": 3, "invalid": 1})
    rows = {r.row: r for r in store.rows(job_id)}
    assert rows[6].state is RowState.INVALID and rows[9].reason == "repeat of row 8"
    # The two "Twice" rows are in different chunks: the first took the course TagMango had, and the second,
    # matched in a later chunk, did not take it again (the matched courses carry across chunks): it made its own.
    assert rows[13].result["course_id"] == twice and rows[13].outcome == "exists"
    assert rows[35].state is RowState.SUCCEEDED and rows[35].result["course_id"] != twice
    assert rows[27].result["course_id"] == existing
    assert not any(r.error and r.error.code == ErrorCode.AMBIGUOUS_COURSE for r in rows.values())
    titles = Counter(c["title"] for c in sandbox.tree(HOST))
    assert titles["Twice"] == 2 and all(n == 1 for t, n in titles.items() if t != "Twice")
    assert sum(titles.values()) == ROWS - 4 + 2


def test_publishing_after_the_write_leaves_alone_a_row_its_parent_already_released(tmp_path, services):
    """Publishing reads the rows back after the job is written; with workers running, a parent published earlier
    may already have run and released its lessons: those are parked once, by the release, not again."""
    from tasks.enqueue import create_job, publish_ready
    from tasks.park import park_key, parked_entries
    from tasks.producer import release_dependents

    store = services.store
    plan = build_plan([write_tree(tmp_path / "tree.csv", 2)])
    job_id = create_job(store, plan, "http://api.test", HOST)
    rows = list(store.rows(job_id))
    course = next(r for r in rows if not r.parent)
    done = settle(store, job_id, course.row_id, {"course_id": "c1", "first_chapter": "f1", "second_chapter": "f2",
                                                   "placeholder_modules": []})
    assert release_dependents(store, job_id, done) >= 1  # as a worker does once the course is made...
    target = store.job(job_id).target
    taken = [row_id for _op, _job, row_id, _title in parked_entries(store, target)]
    store.r.delete(park_key(target))  # ...and the dispatcher has handed its module to a worker already
    publish_ready(store, job_id)  # the job's rows read back: the course is final, its module released
    assert taken and not list(parked_entries(store, target))  # nothing parked a second time
    assert store.job(job_id).published


def test_sheets_of_one_workbook_are_matched_in_the_order_the_workbook_holds_them(tmp_path, services, sandbox):
    """Two course sheets, Zeta before Alpha, each with a course TagMango holds once: the first sheet's row takes
    it (as matching the whole plan always did), though the job lists Alpha's rows first."""
    import openpyxl

    client = TagMangoClient(sandbox.url, TOKEN, HOST)
    live = client.create_course({"title": "Twice", "mangoes": [MANGO]})["_id"]
    client.close()
    book = openpyxl.Workbook()
    for index, name in enumerate(("Zeta", "Alpha")):
        sheet = book.active if index == 0 else book.create_sheet()
        sheet.title = name
        sheet.append(["external_id", "title", "mangoes"])
        sheet.append([f"{name}-1", "Twice", MANGO])
        sheet.append([f"{name}-2", f"Only in {name}", MANGO])
    book.save(tmp_path / "two.xlsx")
    plan = build_plan([tmp_path / "two.xlsx"], defer=True)
    store = services.store
    matching = Matching(services.gateway.door(Credential(sandbox.url, HOST, TOKEN)), store, "create", quiet=True)
    job_id = enqueue(store, plan, sandbox.url, HOST, rows=matched_rows(matching, plan))
    rows = {r.row_id: r for r in store.rows(job_id)}
    assert list(rows) == ["Alpha:2", "Alpha:3", "Zeta:2", "Zeta:3"]
    assert rows["Zeta:2"].outcome == "exists" and rows["Zeta:2"].result["course_id"] == live
    assert rows["Alpha:2"].state is RowState.QUEUED


def test_a_read_refused_or_unanswered_while_matching_is_exit_3_saying_what_was_not_done():
    """``reads_answered`` (matching a chunk, reading for an export): TagMango's refusal or silence is one line and
    exit 3, never a traceback."""
    from importer.exitcodes import EXIT_CONFIG, CommandError
    from importer.matching import reads_answered
    from tasks.errors import ApiTimeout, PermanentApiError

    with pytest.raises(CommandError) as refused, reads_answered("enqueued"):
        raise PermanentApiError("Forbidden", status=403, error_code="COURSE_USER_NOT_CREATOR")
    assert refused.value.exit_code == EXIT_CONFIG
    assert str(refused.value) == "TagMango refused a read (403 COURSE_USER_NOT_CREATOR Forbidden); nothing was enqueued"
    with pytest.raises(CommandError) as silent, reads_answered("written"):
        raise ApiTimeout("timed out")
    assert str(silent.value) == ("TagMango did not answer the reads (ApiTimeout: timed out); nothing was written, "
                                 "try again later")
