"""One door to TagMango (tasks.gateway): reads and writes share the budget, a 429 is learned from and waited
out on every path that reads (the token check, validate --mode, run, requeue --from), another client on the
same key is said once, and a second copy of a course made by an import that did not share Redis is named.

The CLI tests run against a sandbox whose real limit (20 per 5 s) is far below what the importer assumes
(120 per 5 s): the first 429 teaches the importer the real limit. "Another client" on the same key is the
sandbox refusing one request of the command (after its first K) although the limit had room.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tasks import errors, timeline
from tasks.credentials import Credential
from tasks.gateway import Gateway, Pass, Throttled
from tasks.settings import Settings
from tests.helpers import HOST, MANGO, TOKEN, cli, env_for

HEADER = "course_ref,course_title,mangoes,module_title,chapter_title,chapter_description,content,content_type"
WINDOW = "5"


def tree_rows(courses: int = 3, modules: int = 2, lessons: int = 4, *, content: dict[str, str] | None = None,
              renamed: str | None = None) -> str:
    """A curriculum: ``courses`` × ``modules`` × ``lessons``; ``content`` = {"c.m.l": url} gives lessons a video,
    ``renamed`` = "c.m.l" gets another title."""
    lines = [HEADER]
    for c in range(courses):
        for m in range(modules):
            for n in range(lessons):
                where = f"{c}.{m}.{n}"
                title = f"Lesson {where}" + (" (new title)" if where == renamed else "")
                url = (content or {}).get(where)
                lines.append(f"G{c},Gateway course {c},{MANGO},Module {m},{title},About {where},"
                             + (f"{url},video" if url else ","))
    return "\n".join(lines) + "\n"


@pytest.fixture
def low_limit(sandbox_factory):
    """TagMango at 20 requests per 5 s while the importer assumes its default 120 per 5 s."""
    return sandbox_factory(rate_limit=20, rate_window_s=5.0)


def ours(sandbox, before: int) -> int:
    """429s the importer got since ``before``."""
    return sandbox.stats()["rate_limited"] - before


def another_client(sandbox, after: int) -> None:
    """Someone else used the key's budget: TagMango refuses the importer's request after the next ``after``."""
    sandbox.configure(refuse_429={"after": after, "count": 1})


def command(folder, sandbox, *args: str):
    env = env_for(folder, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN, TAGMANGO_RATE_WINDOW=WINDOW)
    return cli(folder, *args, env=env, timeout=240)


def test_every_reading_path_waits_out_429s_and_a_lower_real_limit(low_limit, tmp_path):
    sandbox = low_limit
    one, two, three = (tmp_path / name for name in ("one", "two", "three"))
    for folder in (one, two, three):
        folder.mkdir()
    (one / "tree.csv").write_text(tree_rows())

    # run (create): 3 courses, 6 modules, 24 lessons; the first 429 teaches the importer TagMango's real limit.
    before = sandbox.stats()["rate_limited"]
    done = command(one, sandbox, "run", "tree.csv", "--host", HOST, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and json.loads(done.stdout)["counts"]["succeeded"] == 33
    assert 1 <= ours(sandbox, before) <= 3

    # validate --mode merge from an empty Redis (another folder): 35 reads at 20 per 5 s, the 21st refused.
    before = sandbox.stats()["rate_limited"]
    done = command(two, sandbox, "validate", str(one / "tree.csv"), "--mode", "merge", "--host", HOST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Dry run: nothing was written" in done.stdout
    assert 1 <= ours(sandbox, before) <= 3
    assert "waiting" in done.stdout + done.stderr  # the cool-down is said, not silent

    # the token check: another client has used the key's budget when the command's first request arrives.
    before = sandbox.stats()["rate_limited"]
    another_client(sandbox, after=0)
    done = command(three, sandbox, "validate", str(one / "tree.csv"), "--mode", "create", "--host", HOST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and 1 <= ours(sandbox, before) <= 3
    assert "another client uses the same key" in done.stdout + done.stderr

    # run --mode merge (a renamed lesson, a lesson with content TagMango refuses): a read of the matching is refused.
    (two / "edited.csv").write_text(tree_rows(content={"1.1.2": "https://example.com/x.mp4"}, renamed="0.0.1"))
    before, writes = sandbox.stats()["rate_limited"], sandbox.stats()["writes"]
    another_client(sandbox, after=3)
    done = command(two, sandbox, "run", "edited.csv", "--mode", "merge", "--host", HOST, "--json")
    assert done.returncode == 1, done.stdout + done.stderr  # the refused lesson is dead
    assert json.loads(done.stdout)["counts"]["dead"] == 1 and "Traceback" not in done.stderr
    assert 1 <= ours(sandbox, before) <= 3
    assert sandbox.stats()["writes"] - writes == 2  # the rename, and the refused update

    # requeue --from the fixed file, in merge mode: a read of its matching is refused.
    (two / "fixed.csv").write_text(tree_rows(content={"1.1.2": "https://cdn.tagmango.com/uploads/g.mp4"},
                                             renamed="0.0.1"))
    before = sandbox.stats()["rate_limited"]
    another_client(sandbox, after=3)
    done = command(two, sandbox, "requeue", "--from", "fixed.csv", "--mode", "merge", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["counts"]["dead"] == 0 and "Traceback" not in done.stderr
    assert 1 <= ours(sandbox, before) <= 3
    assert not sandbox.stats()["duplicate_titles"]
    lessons = {ch["title"]: ch for c in sandbox.tree(HOST) for m in c["modules"] for ch in m["chapters"]}
    assert len(lessons) == 24 and "Lesson 0.0.1 (new title)" in lessons
    assert lessons["Lesson 1.1.2"]["content"] == "https://cdn.tagmango.com/uploads/g.mp4"

    # export (its reads run side by side): a read is refused; the workbook still holds every lesson.
    before = sandbox.stats()["rate_limited"]
    another_client(sandbox, after=3)
    done = command(three, sandbox, "export", "-o", "catalog.csv", "--host", HOST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and 1 <= ours(sandbox, before) <= 3
    exported = (three / "catalog.csv").read_text(encoding="utf-8-sig")
    assert exported.count("Gateway course") == 24 and "Lesson 0.0.1 (new title)" in exported

    # undo of the merge job (its live reads first, then its writes): a read is refused; the old title is back.
    plan = command(two, sandbox, "undo", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert json.loads(plan.stdout)["restore"] == 1
    cannot = json.loads(plan.stdout)["cannot"]  # the lesson that had no content before the job: said, not sent
    assert len(cannot) == 1 and "Lesson 1.1.2" in cannot[0] and "no way to clear it" in cannot[0]
    before = sandbox.stats()["rate_limited"]
    another_client(sandbox, after=1)
    done = command(two, sandbox, "undo", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and 1 <= ours(sandbox, before) <= 3
    lessons = {ch["title"]: ch for c in sandbox.tree(HOST) for m in c["modules"] for ch in m["chapters"]}
    assert "Lesson 0.0.1" in lessons and "Lesson 0.0.1 (new title)" not in lessons
    assert lessons["Lesson 1.1.2"]["content"] == "https://cdn.tagmango.com/uploads/g.mp4"


def test_the_same_file_at_the_same_moment_from_two_folders_names_the_duplicates(sandbox, tmp_path):
    """Two folders, two Redis servers: neither run can know of the other. Both create every course; each run
    then finds the copies made by the other and exits 1 naming them (never silently)."""
    lines = ["external_id,title,mangoes"] + [f"D{i:02d},Twice course {i},{MANGO}" for i in range(12)]
    outcomes = {}

    def run(name: str) -> None:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "courses.csv").write_text("\n".join(lines) + "\n")
        env = env_for(folder, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN)
        outcomes[name] = cli(folder, "run", "courses.csv", "--host", HOST, "--results", "results.csv", env=env,
                             timeout=240)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    copies = sandbox.stats()["duplicate_titles"].get(HOST, {})
    if not copies:  # one run happened to see the other's courses while matching: nothing to name
        assert all(o.returncode == 0 for o in outcomes.values())
        return
    named = set()
    for name, done in outcomes.items():
        assert "Traceback" not in done.stderr
        results = (tmp_path / name / "results.csv").read_text(encoding="utf-8-sig")
        if "DUPLICATE_IN_TAGMANGO" in results:
            assert done.returncode == 1 and "DUPLICATE_IN_TAGMANGO" in done.stderr
            named |= {line.split(",")[1] for line in results.splitlines() if "DUPLICATE_IN_TAGMANGO" in line}
    # Every duplicated title is named by at least one of the runs (the one that finished last saw both copies).
    assert set(copies) <= named, (copies, named)
    status = cli(tmp_path / "a", "status", "--json", env=env_for(tmp_path / "a", TAGMANGO_API_URL=sandbox.url,
                                                                  TAGMANGO_API_TOKEN=TOKEN))
    snap = json.loads(status.stdout)
    assert bool(snap["duplicates"]) == (status.returncode == 1)


# -- the door itself, against the suite's Redis and the sandbox ----------------------------------------------


@pytest.fixture
def gateway(redis_server, redis_url):
    made = Gateway.from_settings(redis_server.client(), Settings(rate_limit=10, rate_window=2.0))
    yield made
    made.close()


def test_reads_are_counted_only_for_their_flight(gateway, sandbox):
    """A read that is answered counts for one window after its answer, not for the limiter's longest flight."""
    door = gateway.door(Credential(sandbox.url, HOST, TOKEN))
    for _ in range(10):
        door.read(lambda api: api.get_courses(limit=1))
    started = time.monotonic()
    door.read(lambda api: api.get_courses(limit=1))  # the 11th waits for the first to leave the 2 s window
    assert time.monotonic() - started < 3.0
    assert door.sent == 11 and sandbox.stats()["rate_limited"] == 0


def test_a_429_with_room_is_noticed_once_per_job_and_the_limit_is_learned(gateway, sandbox_factory):
    sandbox = sandbox_factory(rate_limit=4, rate_window_s=2.0)
    door = gateway.door(Credential(sandbox.url, HOST, TOKEN))
    heard: list[str] = []
    for _ in range(4):
        door.send(lambda api: api.get_courses(limit=1), job_id="job-1")
    with pytest.raises(errors.RateLimited):
        door.send(lambda api: api.get_courses(limit=1), job_id="job-1", on_notice=heard.append)
    assert door.limit == 4 and len(heard) == 1 and "another client uses the same key" in heard[0]
    notes = timeline.notices(gateway.r, "job-1")
    assert list(notes) == ["shared_key"] and "only 4 of our requests" in notes["shared_key"]
    assert timeline.read(gateway.r, "job-1")["429"]  # the job's chart shows it
    assert timeline.limit(gateway.r, "job-1") == 2.0  # 4 per 2 s: the dashboard's budget line and ETA use it
    assert door.read(lambda api: api.get_courses(limit=1)).total == 0  # waited out the cool-down, then answered
    assert not timeline.add_notice(gateway.r, "job-1", "shared_key", "again")  # said once


def test_an_admission_is_used_only_while_fresh_and_a_full_budget_throttles(gateway, sandbox):
    door = gateway.door(Credential(sandbox.url, HOST, TOKEN))
    admitted = door.try_admit()
    assert isinstance(admitted, Pass)
    stale = Pass(admitted.flight, admitted.at - 5.0)  # admitted long ago: given back, the request admitted anew
    door.send(lambda api: api.get_courses(limit=1), admitted=stale)
    for _ in range(9):
        door.try_admit()  # the rest of the budget in flight (never answered)
    with pytest.raises(Throttled):
        door.send(lambda api: api.get_courses(limit=1), max_wait=0.2)


def test_a_course_made_twice_is_named_once_the_job_is_final(gateway, sandbox, services_factory, tmp_path):
    """What the check finds after a job: a course it created that TagMango now holds twice (another import made
    the other copy); a title the file itself has twice is not a finding."""
    from importer.matching import duplicates
    from importer.report.results import write_results
    from tasks.enqueue import enqueue
    from tests.helpers import plan_of, run_in_process

    csv = tmp_path / "c.csv"
    csv.write_text(f"external_id,title,mangoes\nA,Alpha,{MANGO}\nB,Beta,{MANGO}\nC,Gamma,{MANGO}\nD,Gamma,{MANGO}\n")
    services = services_factory(rate_limit=1000)
    store = services.store
    job = enqueue(store, plan_of(csv), sandbox.url, HOST)
    run_in_process(services, job)
    door = services.gateway.door(Credential(sandbox.url, HOST, TOKEN))
    assert duplicates.find(store, job, door) == []
    other = door.send(lambda api: api.create_course({"title": "Alpha", "mangoes": [MANGO]}))["_id"]
    door.send(lambda api: api.create_course({"title": "Gamma", "mangoes": [MANGO]}))
    found = duplicates.check(store, job, door)
    assert [(d["title"], d["others"]) for d in found] == [("Alpha", [other])]
    assert duplicates.check(store, job, door) == found and store.job(job).duplicates_checked
    reads = sandbox.stats()["reads"]
    duplicates.check(store, job, door)
    assert sandbox.stats()["reads"] == reads  # checked once per job
    lines = write_results(store, job, tmp_path / "r.csv").read_text(encoding="utf-8-sig").splitlines()
    assert sum("DUPLICATE_IN_TAGMANGO" in line and other in line for line in lines) == 1
