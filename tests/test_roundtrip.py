"""Round trips (issues 21 and 22): the results file and the export are valid input; undo puts values back.

Rows run in the test process against the sandbox over HTTP, on the suite's real Redis (as tests/test_modes.py);
the sandbox's stats count what reached TagMango.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.ingest.validate import Options, build_plan
from importer.matching import match_live
from importer.matching.corrections import corrections_from
from importer.report.results import write_results
from tasks.credentials import Credential
from tasks.enqueue import enqueue
from tasks.requeue import requeue_rows
from tasks.rows import RowState
from tests.helpers import HOST, MANGO, SAMPLES, TOKEN, run_in_process

OTHER = "other-academy.example.com"


@pytest.fixture
def importer(redis_server, services_factory, sandbox):
    """``importer.run(files, mode, host)`` imports like ``run`` (match, enqueue, run the rows in this process) and
    returns the job id; ``importer.lose_redis()`` empties Redis as a new folder would."""

    class Importer:
        def __init__(self) -> None:
            self.services = services_factory(rate_limit=1000)
            self.store = self.services.store

        def door(self, host: str = HOST):  # noqa: ANN201
            return self.services.gateway.door(Credential(sandbox.url, host, TOKEN))

        def plan(self, files: list[Path], mode: str = "create", options: Options | None = None, host: str = HOST):  # noqa: ANN201
            plan = build_plan(files, options or Options())
            assert plan.ok, plan.errors[:3]
            return plan, match_live(self.door(host), self.store, plan, mode, quiet=True)

        def run(self, files: list[Path], mode: str = "create", options: Options | None = None,
                host: str = HOST) -> str:
            plan, _ = self.plan(files, mode, options, host)
            job = enqueue(self.store, plan, sandbox.url, host, mode=mode)
            run_in_process(self.services, job)
            return job

        def lose_redis(self) -> None:
            redis_server.client().flushall()

    return Importer()


# -- issue 21: the results file is a valid input ------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_the_results_file_validates_and_requeue_takes_it_as_written(importer, tmp_path, suffix):
    job = importer.run([SAMPLES / "catalog.xlsx"])
    assert len(importer.store.dead_row_ids(job)) == 2  # the two planted failures
    results = write_results(importer.store, job, tmp_path / f"catalog.results{suffix}")
    plan = build_plan([results], Options())
    assert plan.ok and not plan.problems, [str(p) for p in plan.problems[:5]]
    assert {r.sheet for r in [*plan.rows, *plan.unsent]} == {"courses", "chapters"}
    job_keys = {(r.sheet, r.row): r.key for r in importer.store.rows(job)}
    assert all(job_keys[(r.sheet, r.row)] == r.key for r in [*plan.rows, *plan.unsent])  # the same keys as the job
    match_live(importer.door(), importer.store, plan, "create", quiet=True)
    corrections, problems = corrections_from(importer.store, job, plan)
    # as written: the refused content is sent again (the chapter id that does not exist is dead again at matching)
    assert not problems and len(corrections) == 1
    assert requeue_rows(importer.store, job, corrections=corrections)["requeued"] == 1


def test_a_cell_this_tool_defused_reads_back_as_it_was(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text(f"external_id,title,mangoes,description\nA,'=Sum of parts,{MANGO},'-1 and more\n")
    plan = build_plan([f], Options())
    assert plan.ok
    assert plan.rows[0].body["title"] == "=Sum of parts" and plan.rows[0].body["description"] == "-1 and more"
    assert RowState.QUEUED is plan.rows[0].state
