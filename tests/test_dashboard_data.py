"""The dashboard's adapter and chart without a browser: per-kind counters, the limit, summed credentials."""

from __future__ import annotations

from pathlib import Path

from importer.dashboard import chart
from importer.dashboard.data import JobData
from importer.ingest.validate import build_plan
from tasks import timeline
from tasks.enqueue import create_job
from tasks.rowstore import RowStore
from tests.helpers import HOST

CATALOG = Path(__file__).resolve().parent.parent / "sample_data" / "catalog.xlsx"


def test_kinds_limit_and_the_credential_timeline(redis_url):
    store = RowStore.from_url(redis_url)
    plan = build_plan([CATALOG])
    job_a = create_job(store, plan, "http://api.test", HOST)
    job_b = create_job(store, plan, "http://api.test", HOST, label="again")
    other = create_job(store, plan, "http://api.test", "someone.else.com")
    data = JobData(store, rate_limit=60, rate_window=10)

    # Read from the store's kind:<kind>:<state> counters (a module kind included).
    kinds = data.kinds(job_a)
    assert kinds == {"course": {**dict.fromkeys(kinds["course"], 0), "queued": 20},
                     "chapter": {**dict.fromkeys(kinds["chapter"], 0), "queued": 30}}
    store.r.hset(store.k(job_a, "counts"), mapping={"kind:module:succeeded": 4, "kind:module:queued": 1})
    assert data.kinds(job_a)["module"] == {**dict.fromkeys(kinds["course"], 0), "succeeded": 4, "queued": 1}

    summary = data.job(job_a)
    assert data.limit_per_s(summary) == 6.0 and data.eta_s(summary) == 50 / 6.0
    timeline.set_limit(store.r, job_a, 3.0)  # what the gateway writes when a 429 taught a lower limit
    assert data.limit_per_s(data.job(job_a)) == 3.0

    for job, n in ((job_a, 2), (job_b, 3), (other, 7)):
        timeline.record(store.r, job, "sent", n, at=1000)
    timeline.record(store.r, job_b, "429", at=1001)
    total, jobs = data.credential_timeline(data.job(job_a))
    assert jobs == 2 and total["sent"] == {1000: 5} and total["429"] == {1001: 1}  # the other host's 7 not added

    svg = chart.render(total, 6.0, 999, 1002, own=data.timeline(job_a))
    assert 'id="sent-line"' in svg and 'id="own-line"' in svg and 'data-sent="5"' in svg and 'data-429="1"' in svg
    assert len(chart.render({"sent": {t: 1 for t in range(0, 3600)}}, 6.0, 0, 3599).split('points="')[1]
               .split('"')[0].split()) <= chart.MAX_BUCKETS


def test_dead_groups_carry_advice_and_rows(redis_url):
    from tasks.producer import mark_dead
    from tasks.rows import RowFailure

    store = RowStore.from_url(redis_url)
    job = create_job(store, build_plan([CATALOG]), "http://api.test", HOST)
    mark_dead(store, job, store.row(job, "chapters:31"), RowFailure(None, "no", 401))
    mark_dead(store, job, store.row(job, "chapters:30"), RowFailure("CHAPTER_USER_ASSET_NOT_FOUND", "cdn", 400))
    groups = {g.code: g for g in JobData(store).dead_groups(job)}
    assert set(groups) == {"401", "CHAPTER_USER_ASSET_NOT_FOUND"}
    assert "TAGMANGO_API_TOKEN" in groups["401"].advice.fix
    rows = groups["CHAPTER_USER_ASSET_NOT_FOUND"].rows
    assert [(r.sheet, r.row, r.title) for r in rows] == [("chapters", 30, "Welcome")]
    outcome = JobData(store).requeue(job, "401")  # a bare HTTP status is requeued by status
    assert outcome["requeued"] == 1 and store.row(job, "chapters:31").state == "queued"
