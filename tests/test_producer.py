"""The producer side (tasks.producer) against the suite's real Redis: queueing rows, releasing the rows that wait
for a finished one, dead-lettering down a chain. No worker: rows are finished by hand (tests.helpers.settle)."""

from __future__ import annotations

import pytest

from tasks.enqueue import create_job
from tasks.park import parked_entries
from tasks.producer import mark_dead, publish, release_dependents
from tasks.rows import ErrorCode, RowFailure, RowState
from tasks.rowstore import RowStore
from tests.helpers import HOST, assert_consistent, plan_of, settle, write_catalog, write_tree

API = "http://127.0.0.1:9"
COURSE, M1, M2 = "tree:2#course", "tree:2#module", "tree:5#module"  # rows of write_tree(path, 3, 1)
LESSONS = ["tree:2", "tree:3", "tree:4"]  # module 1's lessons, each waiting for the one before it


@pytest.fixture
def store(redis_url) -> RowStore:
    return RowStore.from_url(redis_url)


def parked(store: RowStore, job_id: str) -> dict[str, str]:
    """Parked row id -> title, for this job."""
    return {row_id: title for _op, job, row_id, title in parked_entries(store, store.job(job_id).target)
            if job == job_id}


def test_publish_parks_rows_for_their_target_with_their_titles(store, tmp_path):
    job_id = create_job(store, plan_of(*write_catalog(tmp_path / "cat", 3)), API, HOST)
    rows = list(store.rows(job_id))
    rows[0].title = "Long " * 100
    assert publish(store, job_id, rows) == 3
    assert parked(store, job_id) == {"cat.courses:2": ("Long " * 100)[:120], "cat.courses:3": "Course C0001",
                                     "cat.courses:4": "Course C0002"}
    assert publish(store, job_id, []) == 0
    assert publish(store, "imp-gone", rows) == 0  # a job that expired: nothing is parked for it
    assert len(parked(store, job_id)) == 3


def test_a_finished_row_releases_only_the_rows_waiting_for_it_and_only_once(store, tmp_path):
    job_id = create_job(store, plan_of(write_tree(tmp_path / "tree.csv", 3, 1)), API, HOST)
    course = settle(store, job_id, COURSE, {"course_id": "C1", "placeholder_modules": []})
    assert release_dependents(store, job_id, course) == 1
    first = store.row(job_id, M1)
    assert first.released and first.gen == 1 and first.ids["course_id"] == "C1" and first.op == "create_module"
    assert set(parked(store, job_id)) == {M1}
    assert store.row(job_id, M2).waiting_for_parent  # the next module waits for the first
    assert release_dependents(store, job_id, course) == 0  # a redelivered parent message changes nothing
    assert store.row(job_id, M1).gen == 1

    module = settle(store, job_id, M1, {"course_id": "C1", "module_id": "M1", "placeholder_chapters": ["P1"]})
    assert release_dependents(store, job_id, module) == 2  # its first lesson and the next module
    lesson = store.row(job_id, LESSONS[0])
    assert lesson.op == "update_chapter" and lesson.ids["chapter_id"] == "P1"  # takes over the placeholder
    assert store.row(job_id, M2).released and store.row(job_id, LESSONS[1]).waiting_for_parent
    assert set(parked(store, job_id)) == {M1, M2, LESSONS[0]}


def test_a_parent_that_finished_without_the_id_a_child_needs_kills_the_chain_below(store, tmp_path):
    job_id = create_job(store, plan_of(write_tree(tmp_path / "tree.csv", 3, 1)), API, HOST)
    course = settle(store, job_id, COURSE, {"course_id": "C1"})
    release_dependents(store, job_id, course)
    module = settle(store, job_id, M1, {"course_id": "C1"})  # no module_id in its result
    assert release_dependents(store, job_id, module) == 1  # the next module only
    for row_id in LESSONS:
        row = store.row(job_id, row_id)
        assert row.state is RowState.DEAD and row.error.code == ErrorCode.DEPENDENCY_FAILED, row_id
    assert "finished without a module id" in store.row(job_id, LESSONS[0]).error.message


def test_mark_dead_cascades_down_every_chain_naming_the_root(store, tmp_path):
    job_id = create_job(store, plan_of(write_tree(tmp_path / "tree.csv", 3, 1)), API, HOST)
    course = store.row(job_id, COURSE)
    mark_dead(store, job_id, course, RowFailure("COURSE_USER_NOT_CREATOR", "not a creator", 403))
    rows = {r.row_id: r for r in store.rows(job_id)}
    assert all(r.state is RowState.DEAD for r in rows.values()) and len(rows) == 7
    assert rows[COURSE].error.code == "COURSE_USER_NOT_CREATOR"
    root = f"row {COURSE} is dead (COURSE_USER_NOT_CREATOR: not a creator); fix and requeue it to send this row"
    assert {r.error.message for r in rows.values() if r.row_id != COURSE} == {root}
    assert set(store.dead_row_ids(job_id)) == set(rows) and parked(store, job_id) == {}
    assert_consistent(store, job_id)


def test_a_long_chain_dies_without_recursion(store, tmp_path):
    """A module of 1,200 lessons, each waiting for the one before: deeper than Python's recursion limit."""
    job_id = create_job(store, plan_of(write_tree(tmp_path / "tree.csv", 1200)), API, HOST)
    module = store.row(job_id, M1)
    mark_dead(store, job_id, module, RowFailure(None, "Invalid request", 400))
    assert store.counts(job_id)["dead"] == 1201 and store.counts(job_id)["queued"] == 1  # the course lives
