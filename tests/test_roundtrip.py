"""Round trips (issues 21 and 22): the results file and the export are valid input; undo puts values back.

Rows run in the test process against the sandbox over HTTP, on the suite's real Redis (as tests/test_modes.py);
the sandbox's stats count what reached TagMango.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from importer.ingest.validate import Options, build_plan
from importer.matching import match_live
from importer.matching.corrections import corrections_from
from importer.matching.export import CURRICULUM_COLUMNS, read_catalog
from importer.matching.live import LiveCatalog
from importer.matching.undo import plan_undo
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

        def door(self, host: str = HOST):
            return self.services.gateway.door(Credential(sandbox.url, host, TOKEN))

        def plan(self, files: list[Path], mode: str = "create", options: Options | None = None,
                 host: str = HOST):
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


def tree_of(sandbox, host: str = HOST) -> list:
    """Every course of the host in creation order: title, description, modules and lessons in order."""
    return [(c["title"], c["description"], [(m["title"], [(ch["title"], ch["description"]) for ch in m["chapters"]])
                                            for m in c["modules"]]) for c in sandbox.tree(host)]


def export_to(importer, path: Path, host: str = HOST, **filters) -> Path:
    exported = read_catalog(LiveCatalog(importer.door(host)), **filters)
    if path.suffix == ".csv":
        write_table(path, [*CURRICULUM_COLUMNS, *exported.read_only], exported.table())
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
    assert plan.ok and not plan.problems, [str(p) for p in plan.problems[:5]]  # read-only columns: silent
    sheet = pd.read_excel(book, sheet_name="curriculum", dtype=str)
    assert {"tagmango_course_isPublished", "tagmango_chapter_totalDuration", "module_id", "chapter_id"} <= set(sheet)

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
    both = cli(tmp_path, "export", "-o", "both.xlsx", "--mangoes", MANGO, "--host", HOST, env=env)
    assert both.returncode == 0 and "Exported 2 course(s)" in both.stdout, both.stderr
    none = cli(tmp_path, "export", "-o", "none.xlsx", "--mangoes", "66c4964c11e7fef26751f3a9", "--host", HOST, env=env)
    assert none.returncode == 0 and "Exported 0 course(s)" in none.stdout, none.stderr
    bad = cli(tmp_path, "export", "-o", "x.csv", "--course-id", "0" * 24, "--host", HOST, env=env)
    assert bad.returncode == 2 and "is not a course of" in bad.stderr


# -- snapshot and undo ------------------------------------------------------------------------------------

SMALL = ("course_ref,course_title,course_description,mangoes,module_title,chapter_title,chapter_description\n"
         f"S1,Small,About small,{MANGO},Only,One,o\nS1,Small,About small,{MANGO},Only,Two,t\n")


def writes_since(sandbox, before: dict) -> dict:
    now = sandbox.stats()["writes_by_route"]
    return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}


def undo_job(importer, job: str) -> tuple[str | None, object]:
    """Plan the undo of ``job`` (reads) and, unless refused, run it as a job; (undo job id or None, the plan)."""
    plan = plan_undo(importer.store, job, LiveCatalog(importer.door()))
    if plan.conflicts or not plan.rows:
        return None, plan
    undo_id = enqueue(importer.store, plan, importer.door().cred.api_url, HOST, mode="merge")
    run_in_process(importer.services, undo_id)
    return undo_id, plan


def edited_export(importer, tmp_path: Path) -> Path:
    """The export with 3 course descriptions and 2 lesson titles changed."""
    book = export_to(importer, tmp_path / "catalog.csv")
    frame = pd.read_csv(book, dtype=str, keep_default_na=False)
    for n, ref in enumerate(dict.fromkeys(frame["course_ref"])):
        frame.loc[frame["course_ref"] == ref, "course_description"] = f"Edited description {n}"
    frame.loc[0, "chapter_title"] = "Edited lesson A"
    frame.loc[len(frame) - 1, "chapter_title"] = "Edited lesson B"
    edited = tmp_path / "edited.csv"
    frame.to_csv(edited, index=False)
    return edited


@needs_trees
def test_an_edited_export_merged_is_five_writes_and_undo_is_five_writes_back(importer, sandbox, tmp_path):
    small = tmp_path / "small.csv"
    small.write_text(SMALL)
    importer.run([TREES / "openedx_demox.csv", TREES / "jyu_percent_fi.csv", small], options=TREE_OPTIONS)
    original = tree_of(sandbox)
    edited = edited_export(importer, tmp_path)
    importer.lose_redis()
    before = sandbox.stats()["writes_by_route"]
    job = importer.run([edited], "merge")
    assert writes_since(sandbox, before) == {"update_course": 3, "update_chapter": 2}
    changed = tree_of(sandbox)
    snap = [r for r in importer.store.rows(job) if r.before]
    assert len(snap) == 5 and all(not k.startswith("Edited") for r in snap for k in map(str, r.before.values()))
    results = write_results(importer.store, job, tmp_path / "edited.results.csv")
    frame = pd.read_csv(results, dtype=str, keep_default_na=False)
    snaps = [json.loads(v) for v in frame["before"] if v]  # the 2 lessons, and each course on its first line
    assert sum(len(v) for v in snaps) == 5 and {"course.description": "About small"} in snaps
    assert {"title": "Two"} in snaps  # the last lesson's title before the edit

    before = sandbox.stats()["writes_by_route"]
    undo_id, plan = undo_job(importer, job)
    assert undo_id and not plan.cannot and len(plan.rows) == 5
    assert writes_since(sandbox, before) == {"update_course": 3, "update_chapter": 2}
    assert tree_of(sandbox) == original

    before = sandbox.stats()["writes_by_route"]
    again, _ = undo_job(importer, undo_id)  # the undo is a job with its own snapshot: it can be undone
    assert again and writes_since(sandbox, before) == {"update_course": 3, "update_chapter": 2}
    assert tree_of(sandbox) == changed


def test_undo_deletes_the_lessons_a_job_created_and_lists_what_it_cannot(importer, sandbox, tmp_path):
    small = tmp_path / "small.csv"
    small.write_text(SMALL)
    importer.run([small])
    original = tree_of(sandbox)
    grown = tmp_path / "grown.csv"
    grown.write_text(SMALL + f"S1,Small,About small,{MANGO},Only,Three,3\nS1,Small,About small,{MANGO},Next,Four,4\n")
    job = importer.run([grown], "merge")
    before = sandbox.stats()["writes_by_route"]
    undo_id, plan = undo_job(importer, job)
    assert writes_since(sandbox, before) == {"delete_chapter": 2}
    assert len(plan.cannot) == 1 and "module 'Next'" in plan.cannot[0] and "by hand" in plan.cannot[0]
    assert [(m[0], m[1]) for m in tree_of(sandbox)[0][2]] == [*[(m[0], m[1]) for m in original[0][2]], ("Next", [])]
    deleted = [r for r in importer.store.rows(undo_id) if r.before]
    assert sorted(r.before["title"] for r in deleted) == ["Four", "Three"]  # what was deleted is in the snapshot


def test_undo_refuses_when_a_value_changed_since_the_job_and_force_puts_it_back(importer, sandbox, redis_url,
                                                                                 tmp_path):
    small = tmp_path / "small.csv"
    small.write_text(SMALL)
    importer.run([small])
    small.write_text(SMALL.replace("About small", "About it"))
    job = importer.run([small], "merge")
    course_id = sandbox.tree(HOST)[0]["_id"]
    importer.door().send(lambda api: api.update_course(course_id, {"description": "By hand"}))
    env = env_for(tmp_path, TAGMANGO_REDIS_URL=redis_url, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN)
    writes = sandbox.stats()["writes"]
    refused = cli(tmp_path, "undo", job, env=env)
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "changed in TagMango since the job" in refused.stderr and "'By hand'" in refused.stderr
    dry = cli(tmp_path, "undo", job, "--dry-run", "--force", env=env)
    assert dry.returncode == 0 and "put back course 'Small'" in dry.stdout and "Dry run" in dry.stdout
    assert sandbox.stats()["writes"] == writes
    forced = cli(tmp_path, "undo", job, "--force", "--no-wait", env=env)
    assert forced.returncode == 0, forced.stderr
    undo_id = importer.store.job(job).get("undone_by")
    run_in_process(importer.services, undo_id)
    assert sandbox.tree(HOST)[0]["description"] == "About small"
