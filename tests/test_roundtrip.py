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
from importer.matching.export import CURRICULUM_COLUMNS, read_catalog
from importer.matching.live import LiveCatalog
from importer.report.results import write_results
from importer.report.tables import write_sheets, write_table
from tasks.credentials import Credential
from tasks.enqueue import enqueue
from tasks.requeue import requeue_rows
from tasks.rows import RowState
from tests.helpers import HOST, MANGO, SAMPLES, SHARED, TOKEN, cli, env_for, run_in_process

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


# -- issue 22: export, and the export as input -------------------------------------------------------------

TREES = SHARED / "course_trees"
TREE_OPTIONS = Options(constants={"mangoes": MANGO, "chapter_description": "See the lesson."})
needs_trees = pytest.mark.skipif(not TREES.exists(), reason="shared data not present")


def tree_of(sandbox, host: str = HOST) -> list:  # noqa: ANN001
    """Every course of the host in creation order: title, description, modules and lessons in order."""
    return [(c["title"], c["description"], [(m["title"], [(ch["title"], ch["description"]) for ch in m["chapters"]])
                                            for m in c["modules"]]) for c in sandbox.tree(host)]


def export_to(importer, path: Path, host: str = HOST, **filters) -> Path:  # noqa: ANN001
    exported = read_catalog(LiveCatalog(importer.door(host)), **filters)
    if path.suffix == ".csv":
        write_table(path, CURRICULUM_COLUMNS, exported.table())
    else:
        write_sheets(path, exported.sheets())
    return path


@needs_trees
def test_an_export_merged_back_writes_nothing_and_builds_the_same_trees_on_another_host(importer, sandbox,
                                                                                        tmp_path):
    importer.run([TREES / "openedx_demox.csv", TREES / "jyu_percent_fi.csv"], options=TREE_OPTIONS)
    tree = tree_of(sandbox)
    assert len(tree) == 2 and sum(len(m[1]) for c in tree for m in c[2]) == 17 + 21
    requests = sandbox.stats()["requests"]
    book = export_to(importer, tmp_path / "catalog.xlsx")
    reads = sandbox.stats()["requests"] - requests
    modules = sum(len(c[2]) for c in tree)
    assert reads == 1 + 2 + modules + 38  # one Get Courses page, then each course, module and lesson once
    plan = build_plan([book], Options())
    assert plan.ok and not plan.problems, [str(p) for p in plan.problems[:5]]

    importer.lose_redis()  # merged back into the same host from an empty Redis: nothing to write
    writes = sandbox.stats()["writes"]
    job = importer.run([book], "merge")
    assert sandbox.stats()["writes"] == writes and tree_of(sandbox) == tree
    assert {r.state for r in importer.store.rows(job)} == {RowState.SKIPPED}

    plan, reconciled = importer.plan([book], "create", host=OTHER)  # another account: the ids are foreign
    assert any("foreign ids: 2 course_id(s)" in text for _row, text in reconciled.warnings), reconciled.warnings
    job = importer.run([book], host=OTHER)
    assert {r.state for r in importer.store.rows(job)} == {RowState.SUCCEEDED}
    assert tree_of(sandbox, OTHER) == tree


@needs_trees
def test_export_as_csv_and_by_course_id_from_the_command_line(importer, sandbox, redis_url, tmp_path):
    importer.run([TREES / "openedx_demox.csv", TREES / "jyu_percent_fi.csv"], options=TREE_OPTIONS)
    first = sandbox.tree(HOST)[0]["_id"]
    env = env_for(tmp_path, TAGMANGO_REDIS_URL=redis_url, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN)
    done = cli(tmp_path, "export", "-o", "one.csv", "--course-id", first, "--host", HOST, env=env)
    assert done.returncode == 0, done.stderr
    assert "Exported 1 course(s)" in done.stdout and "requests in" in done.stdout
    plan = build_plan([tmp_path / "one.csv"], Options())
    assert plan.ok and {r.ids.get("course_id") for r in plan.rows if r.ids.get("course_id")} == {first}
    bad = cli(tmp_path, "export", "-o", "x.csv", "--course-id", "0" * 24, "--host", HOST, env=env)
    assert bad.returncode == 2 and "is not a course of" in bad.stderr
