"""The row store (tasks.rowstore) against the suite's real Redis: the transitions table enforced in the Lua
script, compare-and-set saves, counters that always equal the row states, key lifetimes, and the job record."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections import Counter

import pytest

from tasks.job import Blocked, Job
from tasks.rows import STATES, TRANSITIONS, ErrorCode, Row, RowFailure, RowState
from tasks.rowstore import IllegalTransition, RowStore


def make(row_id: str = "courses:2", kind: str = "course", **kw) -> Row:
    return Row(row_id=row_id, op="create_course", kind=kind, file="f.csv", sheet="courses", row=2, key=row_id,
               title="T", **kw)


@pytest.fixture
def store(redis_url) -> RowStore:
    return RowStore.from_url(redis_url, ttl_days=1)


def counts_match_states(store: RowStore, job_id: str) -> None:
    """The counters are the row states: per state, per kind and state; the dead index is the dead rows."""
    rows = list(store.rows(job_id))
    assert {r.row_id: r.state.value for r in rows} == store.states(job_id)
    counts = store.counts(job_id)
    expected = Counter(r.state.value for r in rows)
    assert {s.value: counts.get(s.value, 0) for s in STATES} == {s.value: expected[s.value] for s in STATES}
    by_kind = Counter(f"kind:{r.kind}:{r.state.value}" for r in rows)
    assert {k: v for k, v in counts.items() if k.startswith("kind:") and v} == dict(by_kind)
    assert set(store.dead_row_ids(job_id)) == {r.row_id for r in rows if r.state is RowState.DEAD}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(STATES, STATES)),
                         ids=lambda s: s.value)
def test_the_transitions_table_is_enforced_for_every_pair_of_states(store, old, new):
    store.create_job(Job("j", created_at=1.0), [make(state=old)])
    row = store.row("j", "courses:2")
    row.state, row.title = new, "changed"
    if new in TRANSITIONS[old]:
        assert store.save("j", row)
        assert store.row("j", "courses:2").title == "changed"
    else:
        with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
            store.save("j", row)
        assert store.row("j", "courses:2").state is old and store.row("j", "courses:2").title == "T"
    counts_match_states(store, "j")


def test_a_row_that_is_not_in_the_store_cannot_be_saved(store):
    store.create_job(Job("j", created_at=1.0), [make()])
    with pytest.raises(IllegalTransition, match="missing -> running"):
        store.save("j", make("courses:9", state=RowState.RUNNING))


def test_expect_is_a_compare_and_set(store):
    row = make()
    store.create_job(Job("j", created_at=1.0), [row])
    row.state = RowState.DEAD
    assert store.save("j", row)
    stale = store.row("j", "courses:2")
    row.state = RowState.QUEUED  # requeued by someone else
    assert store.save("j", row, expect=[RowState.DEAD])
    stale.state, stale.title = RowState.QUEUED, "second requeue"
    assert store.save("j", stale, expect=[RowState.DEAD]) is False  # the second requeue writes nothing
    assert store.row("j", "courses:2").title == "T" and store.counts("j")["queued"] == 1
    assert store.dead_row_ids("j") == []
    row.state = RowState.RUNNING  # an allowed move that is not the expected one is no error either: no write
    assert store.save("j", row, expect=[RowState.RETRYING]) is False
    assert store.row("j", "courses:2").state is RowState.QUEUED


def test_renew_gives_new_generations_and_saves_only_rows_still_active(store):
    rows = [make(f"courses:{i}") for i in range(2, 6)]
    store.create_job(Job("j", created_at=1.0), rows)
    seen = list(store.rows("j"))  # read, then two rows move on behind the reader's back
    for row_id, end in (("courses:3", RowState.SUCCEEDED), ("courses:4", RowState.DEAD)):
        moved = store.row("j", row_id)
        moved.state = RowState.RUNNING
        assert store.save("j", moved)
        moved.state = end
        assert store.save("j", moved)
    for row in seen:
        row.state, row.title = RowState.QUEUED, "renewed"
    saved = store.renew("j", seen)
    assert [r.row_id for r in saved] == ["courses:2", "courses:5"]
    assert [store.generation("j", r.row_id) for r in seen] == [1, 1, 1, 1]
    assert store.states("j") == {"courses:2": "queued", "courses:3": "succeeded", "courses:4": "dead",
                                 "courses:5": "queued"}  # a dead row is not brought back either
    assert store.row("j", "courses:3").title == "T" and store.row("j", "courses:2").title == "renewed"
    assert store.renew("j", []) == []
    counts_match_states(store, "j")


def test_counters_equal_the_states_through_any_sequence_of_legal_moves(store):
    rows = [make(f"r:{i}", kind=("course", "module", "chapter")[i % 3]) for i in range(30)]
    store.create_job(Job("j", created_at=1.0, total=30), rows)
    rng = random.Random(7)
    for _ in range(300):
        row = store.row("j", rng.choice(rows).row_id)
        targets = sorted(TRANSITIONS[row.state], key=lambda s: s.value)
        if targets:
            row.state = rng.choice(targets)
            assert store.save("j", row)
    counts_match_states(store, "j")
    assert sum(store.counts("j")[s.value] for s in STATES) == 30


def test_every_key_of_a_job_lives_for_the_ttl_and_refresh_renews_it(store):
    child = make("m:3", kind="module", parent="courses:2")
    store.create_job(Job("j", created_at=1.0), [make(state=RowState.DEAD), child])
    store.count_delivery("j", "courses:2", 0)
    store.tally("j", "requests")
    keys = [key for key in store.job_keys("j") if store.r.exists(key)]  # the timeline's keys come later
    assert {store.k("j"), store.k("j", "rows"), store.k("j", "waiting:courses:2"), store.k("j", "dead"),
            store.k("j", "deliveries"), store.k("j", "counts")} <= set(keys)
    store.refresh_ttl("j")
    assert all(86000 < store.r.ttl(key) <= 86400 for key in keys), {k: store.r.ttl(k) for k in keys}
    for key in keys:
        store.r.expire(key, 5)
    store.refresh_ttl("j")
    assert all(store.r.ttl(key) > 86000 for key in keys)
    store.add_waiting("j", "courses:7", "m:8")  # a set made later gets the job's lifetime at once
    assert store.r.ttl(store.k("j", "waiting:courses:7")) > 86000


def test_a_job_record_round_trips_as_a_job(store):
    job = Job("j", api_url="http://api", host="a.example.com", total=2, created_at=5.0, label="f.csv",
              mode="merge", files=[{"name": "f.csv", "checksum": "abc"}], headers={"courses": ["title"]},
              fingerprint="fp", extra={"enqueued_from": "box"})
    store.create_job(job, [make()])
    assert store.job("j") == job and store.job("nope") is None
    assert store.job_for_fingerprint("fp") == "j" and store.jobs() == ["j"] and store.latest_job() == "j"
    blocked = Blocked(RowFailure("COURSE_USER_NOT_CREATOR", "not a creator", 403, "PermanentApiError"), "courses:2")
    store.set_job("j", blocked=blocked, published=True, paused_by="ops")
    again = store.job("j")
    assert again.blocked == blocked and again.published and again.target == job.target
    assert again.get("paused_by") == "ops" and again.get("enqueued_from") == "box"
    assert again.get("mode") == "merge" and again.get("nothing here", "default") == "default"
    store.set_job("j", blocked=None)
    assert store.job("j").blocked is None


def test_a_job_record_with_fields_missing_reads_with_defaults(store):
    store.r.hset(store.k("old"), mapping={"id": '"old"', "api_url": '"http://api"', "host": '"h"'})
    job = store.job("old")
    assert (job.total, job.mode, job.files, job.blocked, job.duplicates, job.sandbox) == (0, "create", [], None,
                                                                                          [], False)


def test_the_dispatchers_view_of_the_keys_is_the_stores(store):
    for part in ("rows", "gen"):
        prefix, suffix = RowStore.key_around(part)
        assert prefix + "imp-1" + suffix == store.k("imp-1", part)


# -- one round trip per step of a row run (begin, before_request, finish) -------------------------------------------


def lease_token(store: RowStore, job_id: str, row_id: str) -> str | None:
    return store.r.get(store.lease_key(job_id, row_id))


def test_begin_takes_the_lease_counts_the_delivery_and_reads_row_and_job(store):
    store.create_job(Job("j", created_at=1.0, host="h.example.com"), [make()])
    begun = store.begin("j", "courses:2", 0, "tok-1", 30)
    assert begun.status == "ok" and begun.row.row_id == "courses:2" and begun.deliveries == 1
    assert begun.job.host == "h.example.com" and lease_token(store, "j", "courses:2") == "tok-1"
    assert 29_000 < store.r.pttl(store.lease_key("j", "courses:2")) <= 30_000
    again = store.begin("j", "courses:2", 0, "tok-2", 30)  # another copy: the lease is taken
    assert again.status == "leased" and 29 < again.lease_left <= 30 and again.row.row_id == "courses:2"
    assert store.count_delivery("j", "courses:2", 0) == 2  # the copy that found the row leased counted nothing
    store.r.delete(store.lease_key("j", "courses:2"))
    assert store.begin("j", "courses:2", 0, "tok-3", 30).deliveries == 3


def test_begin_reads_the_job_again_only_when_it_changed(store, redis_url):
    """A process holding the job as it is gets its digest back, not every field: the same ``Job`` again; a job
    changed since (``set_job``) is read afresh, and another process reads it whole."""
    store.create_job(Job("j", created_at=1.0, host="h.example.com"), [make(), make("courses:3"), make("courses:4")])
    first = store.begin("j", "courses:2", 0, "t", 30).job
    assert store.begin("j", "courses:3", 0, "t", 30).job is first and first.blocked is None
    store.set_job("j", blocked=Blocked(RowFailure(ErrorCode.CREDENTIAL_REFUSED, "no"), "courses:2"))
    changed = store.begin("j", "courses:4", 0, "t", 30).job
    assert changed is not first and changed.blocked.row == "courses:2" and changed.host == "h.example.com"
    other = RowStore.from_url(redis_url, ttl_days=1)
    store.r.delete(store.lease_key("j", "courses:4"))
    assert other.begin("j", "courses:4", 0, "u", 30).job == changed


def test_begin_drops_stale_messages_and_final_rows_without_taking_the_lease(store):
    store.create_job(Job("j", created_at=1.0), [make(), make("courses:3", state=RowState.SUCCEEDED)])
    assert store.begin("j", "courses:2", 5, "tok", 30).status == "stale"
    assert store.begin("j", "courses:3", 0, "tok", 30).status == "final"
    assert store.begin("j", "courses:9", 0, "tok", 30) == ("missing", None, 0, None, 0.0)
    assert lease_token(store, "j", "courses:2") is None and lease_token(store, "j", "courses:3") is None
    assert store.r.hlen(store.k("j", "deliveries")) == 0
    store.next_generation("j", "courses:2")
    assert store.begin("j", "courses:2", 1, "tok", 30).status == "ok"  # the current generation


def test_before_request_renews_our_lease_saves_the_start_and_counts_the_request(store):
    store.create_job(Job("j", created_at=1.0), [make()])
    assert store.begin("j", "courses:2", 0, "tok", 5).status == "ok"
    row = store.row("j", "courses:2")
    row.state, row.attempts, row.sent_at = RowState.RUNNING, 1, 123.0
    assert store.before_request("j", "courses:2", "tok", 60, "tm:job:j:timeline", "sent:100", 3600, row=row)
    assert store.row("j", "courses:2").sent_at == 123.0 and store.states("j") == {"courses:2": "running"}
    assert 59_000 < store.r.pttl(store.lease_key("j", "courses:2")) <= 60_000
    assert store.before_request("j", "courses:2", "tok", 60, "tm:job:j:timeline", "sent:101", 3600)  # no save
    assert store.counts("j")["n_requests"] == 2 and store.r.hgetall("tm:job:j:timeline") == {"sent:100": "1",
                                                                                               "sent:101": "1"}
    counts_match_states(store, "j")


def test_before_request_with_a_lost_lease_writes_nothing(store):
    store.create_job(Job("j", created_at=1.0), [make()])
    store.begin("j", "courses:2", 0, "mine", 30)
    store.r.set(store.lease_key("j", "courses:2"), "theirs")  # expired and taken by another copy
    row = store.row("j", "courses:2")
    row.state = RowState.RUNNING
    assert not store.before_request("j", "courses:2", "mine", 60, "tm:job:j:timeline", "sent:1", 3600, row=row)
    assert store.states("j") == {"courses:2": "queued"} and "n_requests" not in store.counts("j")
    assert lease_token(store, "j", "courses:2") == "theirs" and not store.r.exists("tm:job:j:timeline")


def test_before_request_refuses_a_change_the_table_forbids(store):
    store.create_job(Job("j", created_at=1.0), [make(state=RowState.SUCCEEDED)])
    store.r.set(store.lease_key("j", "courses:2"), "tok")
    row = store.row("j", "courses:2")
    row.state = RowState.RUNNING
    with pytest.raises(IllegalTransition, match="succeeded -> running"):
        store.before_request("j", "courses:2", "tok", 60, "tm:job:j:timeline", "sent:1", 3600, row=row)
    assert "n_requests" not in store.counts("j")


def test_finish_writes_ledger_and_row_releases_only_our_lease_and_names_the_waiting_rows(store):
    from tasks.ledger import Ledger, PendingLedger

    store.create_job(Job("j", created_at=1.0), [make(state=RowState.RUNNING), make("chapters:2", kind="chapter",
                                                                                   parent="courses:2")])
    store.r.set(store.lease_key("j", "courses:2"), "tok")
    ledger = PendingLedger(store.r, "http://api", "h.example.com")
    ledger.record("K1", {"course_id": "c1", "first_chapter": "x"}, {"title": "T"}, "j", "courses:2")
    assert ledger.get("K1") is None and ledger.pending  # nothing written yet
    row = store.row("j", "courses:2")
    row.state, row.result = RowState.SUCCEEDED, {"course_id": "c1"}
    assert store.finish("j", row, token="tok", ledger=ledger.pending) == (True, ["chapters:2"])
    plain = Ledger(store.r, "http://api", "h.example.com")
    assert plain.get("K1")["ids"] == {"course_id": "c1", "first_chapter": "x"} and plain.is_claimed("c1")
    assert not plain.is_claimed("x")  # only the ids a row owns are claimed
    assert store.row("j", "courses:2").state is RowState.SUCCEEDED and lease_token(store, "j", "courses:2") is None
    counts_match_states(store, "j")
    other = make("courses:3", state=RowState.RUNNING)
    store.create_job(Job("k", created_at=1.0), [other])
    store.r.set(store.lease_key("k", "courses:3"), "theirs")
    other.state = RowState.RETRYING
    assert store.finish("k", other, token="mine") == (True, [])
    assert lease_token(store, "k", "courses:3") == "theirs"


def test_finish_runs_a_rider_first_in_its_round_trip_and_reads_its_own_arguments_as_before(store):
    from tasks.ledger import Ledger
    from tasks.lua import Rider

    store.create_job(Job("j", created_at=1.0), [make(state=RowState.RUNNING)])
    store.r.set(store.lease_key("j", "courses:2"), "tok")
    row = store.row("j", "courses:2")
    row.state = RowState.SUCCEEDED
    write = Ledger(store.r, "http://api", "h").write("K", {"course_id": "c1"}, {}, "j", "courses:2")
    rider = Rider("mark", "redis.call('SET', KEYS[1], ARGV[1] .. ARGV[2])", ("mark",), ("ran", "!"))
    assert store.finish("j", row, token="tok", ledger=[write], rider=rider) == (True, [])
    assert store.r.get("mark") == "ran!" and Ledger(store.r, "http://api", "h").get("K")["ids"] == {"course_id": "c1"}
    assert Ledger(store.r, "http://api", "h").is_claimed("c1") and lease_token(store, "j", "courses:2") is None
    assert store.row("j", "courses:2").state is RowState.SUCCEEDED
    counts_match_states(store, "j")


def test_finish_with_expect_is_compare_and_set_and_the_ledger_is_written_anyway(store):
    from tasks.ledger import Ledger

    store.create_job(Job("j", created_at=1.0), [make(state=RowState.DEAD)])
    row = store.row("j", "courses:2")
    row.state = RowState.SKIPPED
    write = Ledger(store.r, "http://api", "h").write("K", {"course_id": "c9"}, {}, "j", "courses:2")
    assert store.finish("j", row, ledger=[write], expect=[RowState.QUEUED]) == (False, [])
    assert store.row("j", "courses:2").state is RowState.DEAD and Ledger(store.r, "http://api", "h").get("K")
    row.state = RowState.SUCCEEDED  # dead -> succeeded is not in the table
    with pytest.raises(IllegalTransition, match="dead -> succeeded"):
        store.finish("j", row)


def test_later_bumps_the_generation_saves_counts_releases_and_parks_as_park_later_does(store):
    from tasks.park import LATER_OFFSET, TARGETS, later_write, park_key, park_later

    job = Job("j", created_at=1.0, api_url="http://api", host="h.example.com")
    store.create_job(job, [make(state=RowState.RUNNING), make("courses:3")])
    store.r.set(store.lease_key("j", "courses:2"), "tok")
    row = store.row("j", "courses:2")
    row.state = RowState.RETRYING
    gen = store.later("j", "courses:2", later_write(job, ("create_course", "courses:2", "T"), 30.0), row=row,
                      token="tok", retry_field="retry:100", ttl_s=3600)
    assert gen == 1 == store.generation("j", "courses:2") and store.states("j")["courses:2"] == "retrying"
    assert store.counts("j")["n_retries"] == 1 and store.r.hget("tm:job:j:timeline", "retry:100") == "1"
    assert lease_token(store, "j", "courses:2") is None
    park_later(store, "j", make("courses:3"), 30.0)  # the other door, for comparison
    (ours, our_score), (theirs, their_score) = store.r.zrange(park_key(job.target), 0, -1, withscores=True)
    assert ours.split("\x1f")[2] == "courses:2" and theirs.split("\x1f")[2] == "courses:3"
    assert abs(our_score - their_score) < 1e6 and our_score < -LATER_OFFSET + 2e15  # due in 30 s, ahead of new rows
    assert store.r.hget(TARGETS, job.target) and store.r.llen("tm:park:wake") == 1
    # A limiter wait: no row to save, nothing counted, the generation still goes up.
    assert store.later("j", "courses:3", later_write(job, ("create_course", "courses:3", "T"), 0.5)) == 1
    assert store.counts("j")["n_retries"] == 1 and store.states("j")["courses:3"] == "queued"


def test_later_with_a_refused_save_parks_and_counts_nothing(store):
    from tasks.park import later_write, park_key

    job = Job("j", created_at=1.0, api_url="http://api", host="h.example.com")
    store.create_job(job, [make(state=RowState.SUCCEEDED)])
    store.r.set(store.lease_key("j", "courses:2"), "tok")
    row = store.row("j", "courses:2")
    row.state = RowState.RETRYING
    with pytest.raises(IllegalTransition, match="succeeded -> retrying"):
        store.later("j", "courses:2", later_write(job, ("create_course", "courses:2", "T"), 1.0), row=row,
                    token="tok", retry_field="retry:1", ttl_s=60)
    assert not store.r.exists(park_key(job.target)) and "n_retries" not in store.counts("j")
    assert lease_token(store, "j", "courses:2") is None  # released, as the run's end would


# -- creating a job in chunks ----------------------------------------------------------------------------------------


def mk(row_id: str, **kw) -> Row:
    return dataclasses.replace(make(row_id), **kw)


@pytest.mark.parametrize("n", [5, 6, 7])
def test_a_job_is_written_in_chunks_and_reads_back_whole(store, n):
    rows = [mk(f"courses:{i}", row=i, source={"title": f"T{i}"}, state=RowState.DEAD if i == 4 else RowState.QUEUED)
            for i in range(n)]
    rows.append(mk("chapters:2", op="patch_chapter", kind="chapter", sheet="chapters", parent="courses:1"))
    store.create_job(Job("j", created_at=1.0, total=n + 1, fingerprint="fp"), rows, chunk=3)
    assert list(store.rows("j")) == rows and store.job("j").total == n + 1
    assert store.waiting_on("j", "courses:1") == ["chapters:2"] and store.generations("j") == {}
    counts_match_states(store, "j")
    other = RowStore(store.r, ttl_days=1)  # another process: the templates come from Redis
    assert other.row("j", "chapters:2") == rows[-1] and list(other.rows("j")) == rows
    assert all(0 < store.r.ttl(k) <= 86400 for k in store.job_keys("j") if store.r.exists(k))


def test_an_enqueue_cut_off_half_way_leaves_nothing(store):
    """Rows come as they are matched (``run``); when they stop coming (Ctrl-C, TagMango refusing a read) the rows
    already written are deleted: no job, and nothing of one."""
    written = []

    def rows():
        for i in range(8):
            if i == 7:
                written.append(store.r.hlen(store.k("cut", "rows")))
                raise KeyboardInterrupt
            yield mk(f"courses:{i}", row=i, parent="courses:0" if i == 5 else None)

    with pytest.raises(KeyboardInterrupt):
        store.create_job(Job("cut", created_at=1.0, total=8, fingerprint="fp-cut"), rows(), chunk=3)
    assert written == [6]  # two chunks were written (one of them with a waiting set)...
    assert store.job("cut") is None and "cut" not in store.jobs(100)  # ...there is no job
    assert store.job_for_fingerprint("fp-cut") is None
    assert not store.r.keys("tm:job:cut*")  # and nothing of it


def test_a_job_is_created_when_its_record_is_written_not_when_its_rows_began(store):
    """Rows never touched count as idle from the job's ``created_at`` (the sweeper): matching a big file takes
    a while before the record is written."""
    last = []

    def rows():
        yield mk("courses:1", row=1)
        last.append(time.time())

    job = Job("j", created_at=1.0)
    store.create_job(job, rows())
    assert store.job("j").created_at >= last[0] and job.total == 1


def test_the_ledger_read_ahead_answers_each_key_once_then_reads_redis_again(store):
    from tasks.ledger import Ledger

    ledger = Ledger(store.r, "http://api", "h.example.com")
    ledger.record("K1", {"course_id": "c1"}, {"title": "T"}, "j", "courses:2")
    ledger.read_ahead(["K1", "K2", "K1"], chunk=1)
    ledger.record("K2", {"course_id": "c2"}, {"title": "U"}, "j", "courses:3")  # written after the read ahead
    assert ledger.get("K1")["ids"] == {"course_id": "c1"} and ledger.get("K2") is None  # as read ahead
    assert ledger.get("K2")["ids"] == {"course_id": "c2"}  # the next get reads Redis
