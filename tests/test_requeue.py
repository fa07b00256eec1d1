"""Requeueing dead rows (tasks.requeue) against the suite's real Redis: which dead rows a filter selects, and a
dependency chain brought back behind its root. No worker: rows are finished by hand (tests.helpers.settle)."""

from __future__ import annotations

import pytest

from tasks.enqueue import create_job
from tasks.job import Blocked
from tasks.park import park_key, parked_entries
from tasks.producer import mark_dead, release_dependents
from tasks.requeue import requeue_rows, select_dead
from tasks.rows import ErrorCode, RowFailure, RowState
from tasks.rowstore import RowStore
from tests.helpers import HOST, assert_consistent, plan_of, settle, write_catalog, write_tree

API = "http://127.0.0.1:9"
COURSE, M1, M2 = "tree:2#course", "tree:2#module", "tree:5#module"  # rows of write_tree(path, 3, 1)
LESSONS = ["tree:2", "tree:3", "tree:4"]


@pytest.fixture
def store(redis_url) -> RowStore:
    return RowStore.from_url(redis_url)


def parked(store: RowStore, job_id: str) -> set[str]:
    return {row_id for _op, job, row_id, _title in parked_entries(store, store.job(job_id).target) if job == job_id}


@pytest.fixture
def flat(store, tmp_path) -> str:
    """Five course rows (spreadsheet rows 2-6): three dead for different reasons, one succeeded, one queued."""
    job_id = create_job(store, plan_of(*write_catalog(tmp_path / "cat", 5)), API, HOST)
    failures = {"cat.courses:2": RowFailure("CHAPTER_NOT_FOUND", "no such chapter", 404),
                "cat.courses:3": RowFailure(ErrorCode.RETRIES_EXHAUSTED, "gave up", 502),
                "cat.courses:4": RowFailure(None, "Invalid request", 400)}
    for row_id, failure in failures.items():
        mark_dead(store, job_id, store.row(job_id, row_id), failure)
    settle(store, job_id, "cat.courses:5", {"course_id": "C5"})
    return job_id


def chosen(store: RowStore, job_id: str, **how) -> list[str]:
    return sorted(r.row_id for r in select_dead(store, job_id, **how))


def test_select_dead_filters_by_code_status_row_or_id_and_picks_nothing_unasked(store, flat):
    assert chosen(store, flat) == []  # no filter: nothing, never everything by accident
    assert chosen(store, flat, everything=True) == ["cat.courses:2", "cat.courses:3", "cat.courses:4"]
    assert chosen(store, flat, error_code="chapter_not_found") == ["cat.courses:2"]  # any case
    assert chosen(store, flat, http_status=502) == ["cat.courses:3"]
    assert chosen(store, flat, rows={4, 5, 6}) == ["cat.courses:4"]  # spreadsheet rows; 5 and 6 are not dead
    assert chosen(store, flat, row_ids={"cat.courses:3", "cat.courses:5"}) == ["cat.courses:3"]
    assert chosen(store, flat, row_ids=set()) == []  # a corrected file that matched no dead row
    assert chosen(store, flat, error_code=ErrorCode.RETRIES_EXHAUSTED, http_status=404) == []  # filters combine


def test_requeue_sends_the_chosen_rows_again_once_and_unblocks_the_job(store, flat):
    store.set_job(flat, blocked=Blocked(RowFailure(None, "Invalid token", 401), "cat.courses:2"))
    out = requeue_rows(store, flat, http_status=404)
    assert out == {"job": flat, "requeued": 1, "published": 1, "waiting_for_parent": 0, "still_dead": [],
                   "settled": 0}
    row = store.row(flat, "cat.courses:2")
    assert row.state is RowState.QUEUED and row.requeues == 1 and row.gen == 1 and row.error is None
    assert row.history[-1]["error_code"] == "CHAPTER_NOT_FOUND" and row.history[-1]["requeued"]
    assert parked(store, flat) == {"cat.courses:2"} and store.job(flat).blocked is None
    assert requeue_rows(store, flat, http_status=404)["requeued"] == 0  # already back: nothing twice
    with pytest.raises(KeyError):
        requeue_rows(store, "imp-gone", everything=True)


def test_a_chain_comes_back_behind_its_root_and_goes_on_when_the_root_succeeds(store, tmp_path):
    job_id = create_job(store, plan_of(write_tree(tmp_path / "tree.csv", 3, 1)), API, HOST)
    course = settle(store, job_id, COURSE, {"course_id": "C1", "placeholder_modules": []})
    release_dependents(store, job_id, course)
    store.r.delete(park_key(store.job(job_id).target))  # the module's message, as if a worker took it
    module = store.row(job_id, M1)
    module.state = RowState.RUNNING
    store.save(job_id, module)
    mark_dead(store, job_id, module, RowFailure(None, "Invalid request", 400))
    assert store.counts(job_id)["dead"] == 6  # the module and everything after it

    out = requeue_rows(store, job_id, http_status=400)  # only the module matches; the rows behind it follow
    assert (out["requeued"], out["published"], out["waiting_for_parent"], out["still_dead"]) == (6, 1, 5, [])
    assert parked(store, job_id) == {M1}
    for row_id in [M2, *LESSONS, "tree:5"]:
        row = store.row(job_id, row_id)
        assert row.state is RowState.QUEUED and row.waiting_for_parent and row.error is None, row_id
    assert_consistent(store, job_id, final=False)

    module = settle(store, job_id, M1, {"course_id": "C1", "module_id": "M1", "placeholder_chapters": []})
    assert release_dependents(store, job_id, module) == 2
    assert parked(store, job_id) == {M1, M2, LESSONS[0]}


def test_a_row_whose_parent_is_still_dead_stays_dead(store, tmp_path):
    job_id = create_job(store, plan_of(*write_catalog(tmp_path / "cat", 1, 2)), API, HOST)
    mark_dead(store, job_id, store.row(job_id, "cat.courses:2"), RowFailure(None, "Invalid request", 400))
    out = requeue_rows(store, job_id, error_code=ErrorCode.DEPENDENCY_FAILED)  # the chapters, not their course
    assert out["requeued"] == 0 and sorted(out["still_dead"]) == ["cat.chapters:2", "cat.chapters:3"]
    assert store.counts(job_id)["dead"] == 3 and parked(store, job_id) == set()
    assert_consistent(store, job_id)


def test_rows_behind_a_chosen_row_that_stays_dead_stay_dead_too(store, tmp_path):
    job_id = create_job(store, plan_of(write_tree(tmp_path / "tree.csv", 3, 1)), API, HOST)
    mark_dead(store, job_id, store.row(job_id, COURSE), RowFailure(None, "Invalid request", 400))
    out = requeue_rows(store, job_id, error_code=ErrorCode.DEPENDENCY_FAILED)  # all but the course
    assert out["requeued"] == 0 and sorted(out["still_dead"]) == sorted([M1, M2, *LESSONS, "tree:5"])
    assert store.is_final(job_id)
