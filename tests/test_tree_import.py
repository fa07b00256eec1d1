"""The six real courses of ../shared/data/course_trees, shuffled into one workbook, through real Celery workers
and a sandbox with faults: TagMango ends up with exactly their trees, and a second run creates nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from importer.ingest.validate import Options, build_plan
from tasks.enqueue import enqueue
from tasks.rowstore import RowStore
from tests.helpers import HOST, MANGO, SHARED, assert_consistent, wait_final

TREES = SHARED / "course_trees"
DESCRIPTION = "See the lesson."
pytestmark = pytest.mark.skipif(not TREES.exists(), reason="shared data not present")


def shuffled_workbook(path: Path) -> Path:
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False) for f in sorted(TREES.glob("*.csv"))]
    rows = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=2026)  # any order: positions rule
    rows.to_excel(path, sheet_name="curriculum", index=False)
    return path


def expected_trees() -> list[tuple]:
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False) for f in sorted(TREES.glob("*.csv"))]
    rows = pd.concat(frames, ignore_index=True)
    trees = {}
    for key, course in rows.groupby("course_key", sort=False):
        modules = []
        for _, module in sorted(course.groupby("module_position"), key=lambda m: int(m[0])):
            lessons = module.sort_values("chapter_position", key=lambda s: s.astype(int))
            modules.append((module["module_title"].iloc[0], list(lessons["chapter_title"])))
        trees[key] = (course["course_title"].iloc[0], modules)
    return sorted(trees.values())


def trees_in(sandbox) -> list[tuple]:
    return sorted((c["title"], [(m["title"], [ch["title"] for ch in m["chapters"]]) for m in c["modules"]])
                  for c in sandbox.tree(HOST))


def test_six_real_courses_shuffled_with_faults_become_exactly_their_trees(sandbox_factory, make_env, workers,
                                                                          redis_url, tmp_path):
    sandbox = sandbox_factory(error_rate=0.05, commit_fail_rate=0.03, hang_s=4.0, latency_s=(0.0, 0.05), seed=12)
    workers.start(make_env(sandbox, TAGMANGO_MAX_ATTEMPTS="10"), 2)
    store = RowStore.from_url(redis_url)
    options = Options(constants={"mangoes": MANGO, "chapter_description": DESCRIPTION})
    plan = build_plan([shuffled_workbook(tmp_path / "trees.xlsx")], options)
    assert plan.ok, plan.errors[:3]
    job = enqueue(store, plan, sandbox.url, HOST)
    wait_final(store, job, timeout=240)
    states = assert_consistent(store, job)
    assert states["succeeded"] == 6 + 35 + 185, [r.error for r in store.rows(job) if r.error][:5]
    assert trees_in(sandbox) == expected_trees()
    stats = sandbox.stats()
    assert stats["rate_limited"] == 0 and not stats["duplicate_creates"] and not stats["duplicate_titles"]
    assert stats["faults"].get("error", 0) > 0 and stats["faults"].get("commit_fail", 0) > 0, stats["faults"]
    chapters = [ch for c in sandbox.tree(HOST) for m in c["modules"] for ch in m["chapters"]]
    assert len(chapters) == 185 and all(ch["description"] == DESCRIPTION for ch in chapters)  # no placeholder left

    writes = stats["writes"]
    again = enqueue(store, build_plan([tmp_path / "trees.xlsx"], options), sandbox.url, HOST)
    wait_final(store, again, timeout=120)
    assert assert_consistent(store, again)["skipped"] == 226
    assert sandbox.stats()["writes"] == writes and trees_in(sandbox) == expected_trees()
