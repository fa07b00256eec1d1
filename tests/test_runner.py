"""Every branch of one row run (tasks.runner), in the test process: the suite's real Redis, the sandbox over HTTP.

No Celery worker here: ``enqueue`` publishes messages nobody consumes, and each test runs rows itself with
``run_row``. What only a worker process can show (SIGKILL, Redis restarts, several workers sharing one limit)
is in tests/test_pipeline.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.enqueue import enqueue
from tasks.recovery import pending_row_messages
from tasks.requeue import requeue_rows
from tasks.rows import ErrorCode, RowState
from tasks.runner import Dead, Finished, Later, Message, run_row
from tasks.services import Services
from tests.helpers import HOST, MANGO, TOKEN, plan_of, write_catalog


@pytest.fixture
def start(services_factory, sandbox):
    """``start(files, token=...)`` -> (services, store, job id): the job enqueued, its messages left in the queue."""

    def start(files: list[Path], token: str | None = TOKEN, **settings: float):
        services = services_factory(token=token, **settings)
        return services, services.store, enqueue(services.store, plan_of(*files), sandbox.url, HOST)

    return start


def run(services: Services, job_id: str, row_id: str, gen: int | None = None):
    gen = services.store.generation(job_id, row_id) if gen is None else gen
    return run_row(services, Message(job_id, row_id, gen))


def csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_course_succeeds_and_releases_its_chapters(start, sandbox, tmp_path):
    services, store, job = start(write_catalog(tmp_path / "cat", 1, 2))
    outcome = run(services, job, "cat.courses:2")
    assert isinstance(outcome, Finished) and outcome.summary["state"] == "succeeded"
    course = store.row(job, "cat.courses:2")
    [made] = sandbox.data(HOST)["course"]
    assert course.result["course_id"] == made["_id"] and course.attempts == 1
    chapters = [store.row(job, f"cat.chapters:{n}") for n in (2, 3)]
    assert [c.ids["chapter_id"] for c in chapters] == [made["firstChapter"], made["secondChapter"]]
    assert all(c.released and c.gen == 1 for c in chapters)
    published = {(row, gen) for j, row, gen in pending_row_messages(store, store.job(job)) if j == job}
    assert {("cat.chapters:2", 1), ("cat.chapters:3", 1)} <= published
    assert isinstance(run(services, job, "cat.chapters:2"), Finished)
    assert store.row(job, "cat.chapters:2").state is RowState.SUCCEEDED


def test_a_stale_message_is_dropped_without_a_request(start, sandbox, tmp_path):
    services, store, job = start(write_catalog(tmp_path / "cat", 1))
    outcome = run(services, job, "cat.courses:2", gen=7)
    assert isinstance(outcome, Finished) and outcome.summary["stale_message"]
    assert store.row(job, "cat.courses:2").state is RowState.QUEUED and sandbox.stats()["requests"] == 0


def test_a_leased_row_is_tried_again_when_the_lease_ends(start, sandbox, tmp_path):
    services, store, job = start(write_catalog(tmp_path / "cat", 1), lease_seconds=30)
    other = store.lease(job, "cat.courses:2", 5.0)
    assert other.acquire()
    outcome = run(services, job, "cat.courses:2")
    assert isinstance(outcome, Later) and outcome.gen == 0 and 4.0 <= outcome.countdown <= 5.0
    assert sandbox.stats()["requests"] == 0
    other.release()
    assert isinstance(run(services, job, "cat.courses:2"), Finished)


def test_lease_release_only_deletes_our_own_lock(start, tmp_path):
    services, store, job = start(write_catalog(tmp_path / "cat", 1))
    mine = store.lease(job, "cat.courses:2", 0.05)
    assert mine.acquire()
    store.r.delete(f"tm:lease:{job}:cat.courses:2")  # expired...
    theirs = store.lease(job, "cat.courses:2", 30)
    assert theirs.acquire()  # ...and taken by another copy
    with pytest.raises(Exception):  # noqa: B017 - redis-py's LockNotOwnedError
        mine.release()
    assert store.r.exists(f"tm:lease:{job}:cat.courses:2")  # theirs survives


def test_a_message_delivered_too_often_is_worker_lost(start, sandbox, tmp_path):
    services, store, job = start(write_catalog(tmp_path / "cat", 1, 1), max_deliveries=2)
    for _ in range(2):  # two deliveries whose worker died before finishing
        store.count_delivery(job, "cat.courses:2", 0)
    outcome = run(services, job, "cat.courses:2")
    assert isinstance(outcome, Dead) and outcome.failure.code == ErrorCode.WORKER_LOST
    assert "delivered 2 times" in outcome.failure.message and sandbox.stats()["requests"] == 0
    chapter = store.row(job, "cat.chapters:2")
    assert chapter.state is RowState.DEAD and chapter.error.code == ErrorCode.DEPENDENCY_FAILED


def test_no_credentials_dead_letters_every_row_unsent(start, sandbox, tmp_path):
    services, store, job = start(write_catalog(tmp_path / "cat", 2), token=None)
    first = run(services, job, "cat.courses:2")
    assert isinstance(first, Dead) and first.failure.code == ErrorCode.NO_CREDENTIALS
    assert "TAGMANGO_API_TOKEN" in first.failure.message
    second = run(services, job, "cat.courses:3")
    assert isinstance(second, Dead) and second.failure.code == ErrorCode.NO_CREDENTIALS  # the job is blocked
    assert sandbox.stats()["requests"] == 0 and store.job(job).blocked.failure.code == ErrorCode.NO_CREDENTIALS


def test_a_refused_token_blocks_the_job_after_one_request(start, sandbox, tmp_path):
    services, store, job = start(write_catalog(tmp_path / "cat", 3), token="wrong-token")
    first = run(services, job, "cat.courses:2")
    assert isinstance(first, Dead) and first.failure.http_status == 401
    for row_id in ("cat.courses:3", "cat.courses:4"):
        outcome = run(services, job, row_id)
        assert isinstance(outcome, Dead) and outcome.failure.code == ErrorCode.CREDENTIAL_REFUSED
        assert "refused on row cat.courses:2 (401" in outcome.failure.message
    assert sandbox.stats()["requests"] == 1
    assert requeue_rows(store, job, everything=True)["requeued"] == 3 and store.job(job).blocked is None


def test_a_course_ref_found_nowhere_is_dead_without_a_request(start, sandbox, tmp_path):
    files = [csv(tmp_path / "ch.csv", "course_ref,chapter_slot,title\nNOPE,first,Intro\n")]
    services, store, job = start(files)
    outcome = run(services, job, "ch:2")
    assert isinstance(outcome, Dead) and outcome.failure.code == ErrorCode.COURSE_REF_NOT_FOUND
    assert "'NOPE'" in outcome.failure.message and sandbox.stats()["requests"] == 0


def test_a_course_ref_of_an_earlier_import_is_found_in_the_ledger(start, sandbox, tmp_path):
    services, store, first = start(write_catalog(tmp_path / "cat", 1))
    run(services, first, "cat.courses:2")
    _, _, job = start([csv(tmp_path / "ch.csv", "course_ref,chapter_slot,title\nC0000,second,Outro\n")])
    assert isinstance(run(services, job, "ch:2"), Finished)
    [course] = sandbox.data(HOST)["course"]
    assert store.row(job, "ch:2").result == {"chapter_id": course["secondChapter"]}


def test_a_dead_course_kills_its_chapters_and_requeue_brings_them_back(start, sandbox, tmp_path):
    files = [csv(tmp_path / "c.csv", f"external_id,title,mangoes\nK1,Bad mango,{'f' * 24}\n"),
             csv(tmp_path / "ch.csv", "course_ref,chapter_slot,title\nK1,first,Intro\nK1,second,Outro\n")]
    services, store, job = start(files)
    outcome = run(services, job, "c:2")
    assert isinstance(outcome, Dead) and outcome.failure.http_status == 400
    for row_id in ("ch:2", "ch:3"):
        chapter = store.row(job, row_id)
        assert chapter.error.code == ErrorCode.DEPENDENCY_FAILED
        assert "row c:2 is dead (400: Invalid request)" in chapter.error.message
    fixed = {**store.row(job, "c:2").body, "mangoes": [MANGO]}
    out = requeue_rows(store, job, corrections={"c:2": {"body": fixed}})
    assert out == {"job": job, "requeued": 3, "published": 1, "waiting_for_parent": 2, "still_dead": [], "settled": 0}
    assert all(store.row(job, r).waiting_for_parent for r in ("ch:2", "ch:3"))
    assert isinstance(run(services, job, "c:2"), Finished)
    for row_id in ("ch:2", "ch:3"):
        assert isinstance(run(services, job, row_id), Finished)
    titles = {c["title"] for c in sandbox.data(HOST)["chapter"]}
    assert {"Intro", "Outro"} <= titles
    assert store.row(job, "ch:2").history[0]["error_code"] == ErrorCode.DEPENDENCY_FAILED


def test_a_transient_failure_is_retried_with_a_new_generation(start, sandbox, tmp_path):
    sandbox.configure(error_rate=1.0)
    services, store, job = start(write_catalog(tmp_path / "cat", 1), max_attempts=2)
    first = run(services, job, "cat.courses:2")
    assert isinstance(first, Later) and first.gen == 1 and first.error is not None
    row = store.row(job, "cat.courses:2")
    assert row.state is RowState.RETRYING and row.sent_at and len(row.history) == 1
    second = run(services, job, "cat.courses:2", gen=1)
    assert isinstance(second, Dead) and second.failure.code == ErrorCode.RETRIES_EXHAUSTED


def test_a_create_that_may_have_committed_is_adopted_not_repeated(start, sandbox, tmp_path):
    sandbox.configure(commit_fail_rate=1.0, hang_s=0.1)  # the course is made, the answer is a 502 or 504
    services, store, job = start(write_catalog(tmp_path / "cat", 1))
    assert isinstance(run(services, job, "cat.courses:2"), Later)
    sandbox.configure(commit_fail_rate=0.0)
    assert isinstance(run(services, job, "cat.courses:2", gen=1), Finished)
    row = store.row(job, "cat.courses:2")
    assert row.adopted and store.counts(job)["n_adopted"] == 1
    assert sandbox.stats()["courses_by_host"] == {HOST: 1} and row.result["first_chapter"]
    # The failed create, then the look for it (Get Courses) and the read-back: every one marked done.
    assert flights_logged(store) == sandbox.stats()["requests"] and flights_in_the_air(store) == 0


def test_a_row_done_in_an_earlier_job_is_skipped(start, sandbox, tmp_path):
    services, store, first = start(write_catalog(tmp_path / "cat", 1))
    run(services, first, "cat.courses:2")
    _, _, again = start(write_catalog(tmp_path / "cat", 1))
    outcome = run(services, again, "cat.courses:2")
    assert isinstance(outcome, Finished) and outcome.summary["state"] == "skipped"
    assert "already created by" in store.row(again, "cat.courses:2").reason and sandbox.stats()["requests"] == 1
    # The ledger entry came with the admission, which was given back: only the first job's request is logged.
    assert flights_logged(store) == 1 and flights_in_the_air(store) == 0


def flights_in_the_air(store) -> int:
    """Requests the limiter still counts as in flight (score: admission + longest flight, in the future), over every
    credential; an answered request marked done has its end as score."""
    seconds, micros = store.r.time()
    now_us = seconds * 1_000_000 + micros
    return sum(1 for key in store.r.scan_iter("tm:rate:*:log")
               for _, score in store.r.zrange(key, 0, -1, withscores=True) if score > now_us)


def flights_logged(store) -> int:
    return sum(store.r.zcard(key) for key in store.r.scan_iter("tm:rate:*:log"))


def test_a_row_that_succeeds_takes_three_round_trips_to_redis(start, sandbox, tmp_path, monkeypatch):
    """begin (row, generation, lease, delivery, job); the limiter's admission with the row's ledger entry and the start
    of the attempt (lease, the row saved running, request counts); finish (the request marked done in the limiter,
    ledger, row, lease, waiting rows)."""
    services, store, job = start(write_catalog(tmp_path / "cat", 2))
    assert isinstance(run(services, job, "cat.courses:2"), Finished)  # scripts loaded, connections made
    outcome, sent = _round_trips(monkeypatch, lambda: run(services, job, "cat.courses:3", gen=0))
    assert isinstance(outcome, Finished) and outcome.summary["state"] == "succeeded"
    assert len(sent) == 3
    row = store.row(job, "cat.courses:3")
    assert row.attempts == 1 and row.sent_at and store.counts(job)["n_requests"] == 2
    assert not store.r.exists(store.lease_key(job, "cat.courses:3"))
    assert flights_logged(store) == 2 and flights_in_the_air(store) == 0  # both requests marked done by finish


def test_an_update_whose_ledger_entry_has_other_content_is_sent_and_one_with_the_same_is_skipped(
        start, sandbox, tmp_path, monkeypatch):
    """The admission is a gate on the row's ledger entry: an entry stops it before anything is admitted; an update
    whose content changed since is then admitted and sent (4 round trips), one with the same content is skipped
    without taking a place in the budget (3)."""
    services, store, job = start(write_catalog(tmp_path / "cat", 1))
    run(services, job, "cat.courses:2")
    chapter = store.row(job, "cat.courses:2").result["first_chapter"]
    sent = sandbox.stats()["requests"]
    outcomes = []
    for n, title in enumerate(("New title", "Newer title", "Newer title")):
        files = [csv(tmp_path / f"ch{n}.chapters.csv", f"chapter_id,title\n{chapter},{title}\n")]
        _, _, again = start(files)
        row_id = f"ch{n}.chapters:2"
        gen = store.generation(again, row_id)
        store.row(again, row_id)  # the job's templates read (once per job and process)
        outcome, trips = _round_trips(monkeypatch, lambda again=again, row_id=row_id, gen=gen: run(
            services, again, row_id, gen))
        loads = sum(1 for t in trips if b"SCRIPT" in bytes(t[0] if isinstance(t, list) else t)[:30])
        outcomes.append((outcome.summary["state"], len(trips) - 2 * loads))  # a script loaded: 2 more, once
    assert outcomes == [("succeeded", 3), ("succeeded", 4), ("skipped", 3)]  # no entry yet: admitted at once
    assert sandbox.stats()["requests"] == sent + 2 and flights_in_the_air(store) == 0
    assert flights_logged(store) == sent + 2  # the skipped row took no place in the budget


@pytest.mark.parametrize("step", ["start_step", "before_request"])
def test_a_run_whose_lease_was_taken_over_sends_nothing(start, sandbox, tmp_path, monkeypatch, step):
    """The lease is checked with the admission that starts the attempt (``start_step``: not admitted, nothing
    written), and again before a request sent on an admission of its own (``before_request``; here the attempt's
    admission is too old when its request would leave, so the door admits it again): a run that outlived its lease
    (another copy of the message took the row) stops there, its admissions given back, nothing sent or counted."""
    from tasks.limiter import keys
    from tasks.rowstore import RowStore

    services, store, job = start(write_catalog(tmp_path / "cat", 1))
    original = getattr(RowStore, step)

    def taken_over(self, job_id, row_id, *args, **kwargs):
        self.r.set(self.lease_key(job_id, row_id), "another-copy")
        return original(self, job_id, row_id, *args, **kwargs)

    if step == "before_request":
        monkeypatch.setattr("tasks.gateway.FRESH_ADMISSION_S", -1.0)
    monkeypatch.setattr(RowStore, step, taken_over)
    outcome = run(services, job, "cat.courses:2")
    assert isinstance(outcome, Finished) and outcome.summary["lease_lost"]
    assert sandbox.stats()["requests"] == 0
    if step == "start_step":
        assert store.states(job)["cat.courses:2"] == "queued" and "n_requests" not in store.counts(job)
    else:  # the start was saved while the lease was ours; its request, counted with it and never sent, taken back
        assert store.states(job)["cat.courses:2"] == "running" and store.counts(job)["n_requests"] == 0
    door = services.gateway.door(services.credentials.resolve(HOST, sandbox.url))
    assert store.r.zcard(keys(door.key)["log"]) == 0  # not admitted, or the admissions given back
    assert store.r.get(store.lease_key(job, "cat.courses:2")) == "another-copy"  # theirs, untouched


def test_a_request_sent_on_a_new_admission_after_the_prepared_one_aged_is_counted_once(start, sandbox, tmp_path,
                                                                                      monkeypatch):
    """The admission that saved the attempt's start counted its request; if the door finds it too old and admits the
    request again, ``before_request`` checks the lease without counting it a second time."""
    monkeypatch.setattr("tasks.gateway.FRESH_ADMISSION_S", -1.0)
    services, store, job = start(write_catalog(tmp_path / "cat", 2))
    assert all(isinstance(run(services, job, f"cat.courses:{n}"), Finished) for n in (2, 3))
    assert store.counts(job)["n_requests"] == 2 == sandbox.stats()["requests"]
    assert {r.state for r in store.rows(job)} == {RowState.SUCCEEDED}
    assert flights_in_the_air(store) == 0 and flights_logged(store) == 2  # the aged admissions given back


def test_a_create_is_running_with_its_sent_at_in_redis_when_its_request_leaves(start, sandbox, tmp_path, monkeypatch):
    """The attempt's start is saved by the admission, before the request: a worker killed while the request is out
    leaves a row that says "look first" (``sent_at``), so its next attempt cannot create the course twice."""
    from tasks.client import TagMangoClient

    services, store, job = start(write_catalog(tmp_path / "cat", 1))
    seen = []
    original = TagMangoClient.create_course

    def create_course(self, body):
        row = store.row(job, "cat.courses:2")
        seen.append((row.state, row.attempts, bool(row.sent_at), store.counts(job).get("n_requests")))
        return original(self, body)

    monkeypatch.setattr(TagMangoClient, "create_course", create_course)
    assert isinstance(run(services, job, "cat.courses:2"), Finished)
    assert seen == [(RowState.RUNNING, 1, True, 1)]


@pytest.mark.parametrize("how", ["check_done raises", "the call sends nothing"])
def test_a_request_counted_with_the_start_that_never_leaves_is_taken_back(start, sandbox, tmp_path, monkeypatch,
                                                                           how):
    """The admission that starts the attempt counts its request; a run that then sends nothing (a ``check_done``
    that fails, an operation that finds nothing to do) takes the count and the admission back."""
    from tasks.operations import Skip
    from tasks.operations.create_course import CreateCourse

    services, store, job = start(write_catalog(tmp_path / "cat", 1))
    if how == "check_done raises":
        def check_done(self, ctx, row):
            raise RuntimeError("a bug in check_done")
        monkeypatch.setattr(CreateCourse, "check_done", check_done)
        with pytest.raises(RuntimeError):
            run(services, job, "cat.courses:2")
    else:
        monkeypatch.setattr(CreateCourse, "call", lambda self, ctx, row: Skip({}, "nothing to do"))
        outcome = run(services, job, "cat.courses:2")
        assert isinstance(outcome, Finished) and outcome.summary["state"] == "skipped"
    assert sandbox.stats()["requests"] == 0 and store.counts(job).get("n_requests", 0) == 0
    assert sum(int(v) for k, v in store.r.hgetall(f"tm:job:{job}:timeline").items() if k.startswith("sent:")) == 0
    assert flights_logged(store) == 0


def test_a_start_the_row_store_refuses_admits_nothing_and_raises(start, sandbox, tmp_path, monkeypatch):
    """A row that moved on under the run (here: already succeeded, which RUNNING may not follow) makes the start's
    save illegal: the admission is refused with it, nothing is sent or counted, and the run says so."""
    from tasks.rowstore import IllegalTransition, RowStore

    services, store, job = start(write_catalog(tmp_path / "cat", 1))
    original = RowStore.start_step

    def moved_on(self, job_id, row_id, *args):
        self.r.hset(self.k(job_id, "state"), row_id, "succeeded")
        return original(self, job_id, row_id, *args)

    monkeypatch.setattr(RowStore, "start_step", moved_on)
    with pytest.raises(IllegalTransition):
        run(services, job, "cat.courses:2")
    assert sandbox.stats()["requests"] == 0 and store.counts(job).get("n_requests", 0) == 0
    assert flights_logged(store) == 0


def test_a_retry_is_one_round_trip_after_the_failed_request_and_parks_the_row(start, sandbox, tmp_path, monkeypatch):

    from tasks.park import parked_entries

    sandbox.configure(error_rate=1.0)
    services, store, job = start(write_catalog(tmp_path / "cat", 2))
    run(services, job, "cat.courses:2")  # scripts loaded, connections made
    outcome, sent = _round_trips(monkeypatch, lambda: run(services, job, "cat.courses:3", gen=0))
    # begin, admission (with the ledger entry and the start of the attempt), the limiter's done (a failed request is
    # marked done at once), later (generation, save, count, lease, park)
    assert isinstance(outcome, Later) and outcome.parked and outcome.gen == 1 and len(sent) == 4
    row = store.row(job, "cat.courses:3")
    assert row.state is RowState.RETRYING and store.generation(job, "cat.courses:3") == 1
    assert store.counts(job)["n_retries"] == 2 and not store.r.exists(store.lease_key(job, "cat.courses:3"))
    parked = {row_id for _op, j, row_id, _title in parked_entries(store, store.job(job).target) if j == job}
    assert {"cat.courses:2", "cat.courses:3"} <= parked


def _round_trips(monkeypatch, step):
    """``step()``'s answer and the commands it sent to Redis, one per round trip (a pipeline or a script is one)."""
    import redis.connection

    sent: list = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    try:
        return step(), sent
    finally:
        monkeypatch.undo()
