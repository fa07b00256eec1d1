"""The park (tasks.park) against the suite's real Redis: its two doors, the order rows leave in, and its keys.

Rows are taken out by a dispatcher ticked by hand with no credential for the target (unpaced: everything due
goes at once), so the order is the park's, not the limiter's.
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest

from tasks.dispatch import Dispatcher
from tasks.enqueue import create_job
from tasks.park import (
    TARGETS,
    TITLE_IN_MESSAGE,
    WAKE,
    credit_key,
    give_back,
    member,
    park_key,
    park_later,
    parked_count,
    parked_entries,
    parse,
)
from tasks.producer import publish
from tasks.rowstore import RowStore
from tests.helpers import HOST, plan_of, write_catalog

API = "http://127.0.0.1:9"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def job(redis_url, tmp_path) -> tuple[RowStore, str]:
    """A job of five course rows, recorded and not queued yet."""
    store = RowStore.from_url(redis_url)
    return store, create_job(store, plan_of(*write_catalog(tmp_path / "cat", 5)), API, HOST)


def take(store: RowStore) -> list[str]:
    """Row ids of what a dispatcher hands out now (no credential here: nothing is paced)."""
    handed: list = []
    dispatcher = Dispatcher(store, lambda api_url, host: None, limit=10, window=1.0)
    assert dispatcher.take_lock()
    dispatcher.tick(handed.extend)
    store.r.delete("tm:dispatch:lock")
    return [row.row_id for row in handed]


class ParkCalls(ast.NodeVisitor):
    """The functions (innermost) that call something named ``park``."""

    def __init__(self) -> None:
        self.where, self.found = ["<module>"], set()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.where.append(node.name)
        self.generic_visit(node)
        self.where.pop()

    def visit_Call(self, node: ast.Call) -> None:
        if (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) == "park":
            self.found.add(self.where[-1])
        self.generic_visit(node)


def test_only_the_two_doors_call_park():
    """New rows come in through producer.publish (of rows or, ``publish_entries``, of what publishing needs of
    them), rows under way through park_later: no other product code parks."""
    callers = set()
    for path in sorted((ROOT / "tasks").rglob("*.py")) + sorted((ROOT / "importer").rglob("*.py")):
        visitor = ParkCalls()
        visitor.visit(ast.parse(path.read_text(), str(path)))
        callers |= {f"{path.relative_to(ROOT)}:{function}" for function in visitor.found}
    assert callers == {"tasks/producer.py:publish_entries", "tasks/park.py:park_later"}


def test_new_rows_leave_in_input_order_and_rows_put_back_go_first_once_due(job):
    store, job_id = job
    rows = list(store.rows(job_id))
    assert publish(store, job_id, rows[:3]) == 3
    park_later(store, job_id, rows[4], delay=0.3)  # a retry after its backoff
    assert take(store) == ["cat.courses:2", "cat.courses:3", "cat.courses:4"]  # the retry is not due yet
    publish(store, job_id, [rows[3]])
    time.sleep(0.35)
    assert take(store) == ["cat.courses:6", "cat.courses:5"]  # due now: ahead of the row queued before it
    assert parked_count(store, store.job(job_id).target) == 0


def test_park_later_takes_a_row_or_its_entry_and_nothing_for_a_job_that_is_gone(job):
    store, job_id = job
    row = next(store.rows(job_id))
    row.title = "x" * 500
    assert park_later(store, job_id, row, delay=0) == 1
    assert park_later(store, job_id, ("create_course", "cat.courses:3", "Course 1"), delay=0) == 1
    assert park_later(store, "imp-expired", ("create_course", "c:1", "T"), delay=0) == 0
    entries = sorted(parked_entries(store, store.job(job_id).target))
    assert entries == [("create_course", job_id, "cat.courses:2", "x" * TITLE_IN_MESSAGE),
                       ("create_course", job_id, "cat.courses:3", "Course 1")]
    assert parked_count(store, store.job(job_id).target) == 2


def test_a_row_is_parked_once_and_its_target_is_known_to_the_dispatcher(job):
    store, job_id = job
    rows = list(store.rows(job_id))
    publish(store, job_id, rows)
    park_later(store, job_id, rows[0], delay=60)  # put back while still parked: moved, not doubled
    target = store.job(job_id).target
    assert parked_count(store, target) == 5
    assert json.loads(store.r.hget(TARGETS, target)) == {"api_url": API, "host": HOST}
    assert store.r.lrange(WAKE, 0, -1) == ["1"]  # one wake-up token, however many rows came in
    assert "cat.courses:2" not in take(store)


def test_a_slot_given_back_is_a_credit_for_the_target_that_expires(redis_url):
    store = RowStore.from_url(redis_url)
    give_back(store, "t1")
    give_back(store, "t1")
    assert store.r.get(credit_key("t1")) == "2" and 0 < store.r.ttl(credit_key("t1")) <= 60


def test_a_member_names_the_row_and_its_title_safely():
    entry = member("create_course", "imp-1", "courses:2", "A\x1fB")
    assert parse(entry) == ("create_course", "imp-1", "courses:2", "A B")
    assert park_key("t1") == "tm:park:t1" and credit_key("t1") == "tm:park:t1:credit"
