"""The operator's commands as a user runs them: subprocesses, embedded Redis, worker and sandbox."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import httpx
import pandas as pd
import yaml

from tests.helpers import HOST, ROOT, SAMPLES, TOKEN, cli, embedded_store, env_for
from tests.services import free_port, wait_until


def test_demo_run_dead_letters_then_requeue_from_fixed_file(kept):
    tmp_path = kept
    done = cli(tmp_path, "run", str(SAMPLES / "catalog.xlsx"), "--sandbox", "--results", "out.xlsx",
               "--keep-running")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CHAPTER_USER_ASSET_NOT_FOUND" in done.stdout and "requeue" in done.stdout
    assert "Traceback" not in done.stderr
    results = pd.read_excel(tmp_path / "out.xlsx", sheet_name=None, dtype=str, engine="calamine")
    assert set(results) == {"courses", "chapters"} and len(results["courses"]) == 20 and len(results["chapters"]) == 30
    chapters = results["chapters"].fillna("")
    assert list(chapters["row"]) == [str(n) for n in range(2, 32)]  # input order, spreadsheet row numbers
    assert dict(chapters.set_index("row")["error_code"])["30"] == "CHAPTER_USER_ASSET_NOT_FOUND"
    assert dict(chapters.set_index("row")["error_code"])["31"] == "CHAPTER_NOT_FOUND"

    status = json.loads(cli(tmp_path, "status", "--json").stdout)
    assert status["final"] and status["counts"]["dead"] == 2 and status["counts"]["succeeded"] == 48
    assert status["total"] == 50
    export = tmp_path / "dead.csv"
    assert cli(tmp_path, "dead", "--export", str(export)).returncode == 0
    dead = pd.read_csv(export, dtype=str)
    assert sorted(dead["row"]) == ["30", "31"]
    assert json.loads(dead.set_index("row").loc["30", "request_body"])["content"].startswith("https://example.com")
    report = tmp_path / "report.csv"
    assert cli(tmp_path, "report", "-o", str(report)).returncode == 0
    rows = pd.read_csv(report, dtype=str)
    assert (rows["status"] == "succeeded").sum() == 48 and (rows["status"] == "dead").sum() == 2

    # The sandbox agrees with the results: every course id exists once, with its title.
    port = (tmp_path / "state" / "sandbox" / "port").read_text()
    data = httpx.get(f"http://127.0.0.1:{port}/_sandbox/data").json()
    made = {c["_id"]: c["title"] for c in data["course"]}
    assert len(made) == 20
    assert {made[i] for i in results["courses"]["course_id"]} == set(results["courses"]["title"])

    fixed = cli(tmp_path, "requeue", "--from", str(SAMPLES / "catalog_fixed.xlsx"), "--results", "out2.csv")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    status = json.loads(cli(tmp_path, "status", "--json").stdout)
    assert status["counts"]["succeeded"] == 50 and status["counts"]["dead"] == 0
    data = httpx.get(f"http://127.0.0.1:{port}/_sandbox/data").json()
    assert len(data["course"]) == 20
    assert any(c["content"] == "https://cdn.tagmango.com/uploads/sample/video/CRS-015-intro.mp4"
               for c in data["chapter"])


def test_ctrl_c_then_run_again_resumes_without_duplicates(kept):
    tmp_path = kept
    lines = ["external_id,title,mangoes"] + [f"R{i:03d},Resume course {i},66c4964c11e7fef26751f3a7"
                                             for i in range(60)]
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    # 60 per 10 s: the import takes about 10 s; the Ctrl-C below lands once 20 rows are done and 40 (about 7 s of
    # sending) are not, however slow the start.
    env = env_for(tmp_path, TAGMANGO_RATE_LIMIT="60")
    # Started as a script's background job is (SIGINT ignored, inherited): Ctrl-C and `stop` must still interrupt it.
    proc = subprocess.Popen([sys.executable, "-m", "importer", "run", "big.csv", "--sandbox"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        # Interrupt once 20 rows are done and the job is not final, read from the job's own state in Redis.
        store = wait_until(lambda: embedded_store(tmp_path), 60, message="the embedded Redis")
        job_id = wait_until(store.latest_job, 60, message="the job")
        wait_until(lambda: store.counts(job_id).get("succeeded", 0) >= 20, 90, 0.05, "20 rows done")
        assert not store.is_final(job_id)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "run the same command again" in out.lower()
    again = cli(tmp_path, "run", "big.csv", "--sandbox", "--json", "--keep-running", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    summary = json.loads(again.stdout)
    assert summary["final"] and summary["counts"]["succeeded"] == 60 and summary["total"] == 60
    port = (tmp_path / "state" / "sandbox" / "port").read_text()
    stats = httpx.get(f"http://127.0.0.1:{port}/_sandbox/stats").json()
    assert stats["courses_by_host"]["academy.sandbox.local"] == 60 and not stats["duplicate_titles"]


def test_missing_token_is_a_config_error_before_anything_is_enqueued(tmp_path):
    done = cli(tmp_path, "run", str(SAMPLES / "catalog.xlsx"), "--host", HOST)
    assert done.returncode == 3 and "TAGMANGO_API_TOKEN" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()


def test_invalid_input_enqueues_nothing(tmp_path):
    done = cli(tmp_path, "run", str(SAMPLES / "broken.xlsx"), "--sandbox")
    assert done.returncode == 2 and "Nothing was enqueued" in done.stdout
    assert not (tmp_path / "state").exists()


def test_a_problem_in_the_last_chunk_enqueues_nothing(tmp_path, redis_url):
    """Rows are written 5,000 per round trip (tasks.rowstore.CHUNK): a bad cell in row 12,002 still stops the
    whole file before the first chunk, and nothing of it is in Redis."""
    mango = "66c4964c11e7fef26751f3a7"
    lines = [f"last-chunk-{i},Course {i},{mango}" for i in range(12_000)] + ["last-chunk-x,Course x,not-a-mango"]
    (tmp_path / "lastchunk.csv").write_text("external_id,title,mangoes\n" + "\n".join(lines) + "\n")
    from tasks.rowstore import RowStore

    store = RowStore.from_url(redis_url)
    before = set(store.r.scan_iter(match="tm:job:*", count=1000))
    env = env_for(tmp_path, TAGMANGO_REDIS_URL=redis_url, TAGMANGO_API_TOKEN=TOKEN)
    done = cli(tmp_path, "run", "lastchunk.csv", "--no-wait", "--host", HOST, env=env)
    assert done.returncode == 2 and "Nothing was enqueued" in done.stdout, done.stdout + done.stderr
    assert "row 12002, column mangoes" in done.stdout
    assert set(store.r.scan_iter(match="tm:job:*", count=1000)) == before


def test_unreachable_redis_is_exit_3(tmp_path):
    env = env_for(tmp_path, TAGMANGO_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", TAGMANGO_API_TOKEN=TOKEN)
    done = cli(tmp_path, "run", str(SAMPLES / "catalog.xlsx"), "--host", HOST, env=env)
    assert done.returncode == 3 and "cannot reach Redis" in done.stderr


def test_a_redis_url_where_nothing_answers_is_exit_3_not_a_hang(tmp_path):
    """A program that takes the connection and never answers (a wrong port): the command says so and exits."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        env = env_for(tmp_path, TAGMANGO_REDIS_URL=f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
                      TAGMANGO_API_TOKEN=TOKEN)
        done = cli(tmp_path, "status", env=env)
    assert done.returncode == 3 and "does not answer" in done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_flower_shows_rows_without_the_token_and_can_requeue(sandbox, make_env, workers, redis_url, tmp_path):
    from importer.ingest.validate import build_plan
    from tasks.enqueue import enqueue
    from tasks.rowstore import RowStore

    sandbox.configure(error_rate=0.3)
    env = make_env(sandbox)
    workers.start(env, 1)
    port = free_port()
    flower_env = {**env, "FLOWER_BASIC_AUTH": "ops:pw-123"}
    flower = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tasks", "flower", f"--port={port}",
                               "--address=127.0.0.1"], env=flower_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        # Flower lists a worker on /workers?json=1 only from its events (a heartbeat): its receiver is listening.
        wait_until(lambda: (_get(base + "/workers?json=1", ("ops", "pw-123")) or {}).get("data"), 60,
                   message="flower receiving the worker's events")
        assert httpx.get(base + "/api/tasks").status_code == 401  # basic auth on
        store = RowStore.from_url(redis_url)
        job_id = enqueue(store, build_plan([SAMPLES / "catalog.xlsx"]), sandbox.url, HOST)
        wait_until(lambda: store.is_final(job_id), 120, message="job")
        def seen() -> dict | None:  # one task per row (Flower learns them from events; allow a rare lost one)
            tasks = _get(base + "/api/tasks", ("ops", "pw-123")) or {}
            failed = any("CHAPTER_NOT_FOUND" in (t.get("exception") or "") for t in tasks.values())
            return tasks if len(tasks) >= 45 and failed else None

        tasks = wait_until(seen, 60, message="the rows' tasks in flower")
        text = json.dumps(tasks)
        assert TOKEN not in text and job_id in text
        names = {t["name"] for t in tasks.values()}
        assert names >= {"tagmango.create_course", "tagmango.patch_chapter"}
        failed = [t for t in tasks.values() if t["state"] == "FAILURE"]
        assert any("CHAPTER_NOT_FOUND" in (t.get("exception") or "") for t in failed)
        assert store.counts(job_id)["n_retries"] > 0
        assert any((t.get("retries") or 0) > 0 for t in tasks.values())  # retries are visible per task
        sandbox.configure(error_rate=0.0)
        r = httpx.post(base + "/api/task/async-apply/tagmango.requeue", auth=("ops", "pw-123"),
                       json={"args": [job_id], "kwargs": {"error_code": "CHAPTER_NOT_FOUND"}})
        assert r.status_code == 200, r.text
        wait_until(lambda: store.row(job_id, "chapters:31").requeues == 1, 30, message="requeue through flower")
        wait_until(lambda: store.is_final(job_id), 60, message="job final again")
        assert TOKEN not in json.dumps(_get(base + "/api/tasks", ("ops", "pw-123")))
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(timeout=20)


def _get(url: str, auth: tuple[str, str]):
    try:
        r = httpx.get(url, auth=auth, timeout=5)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def test_docker_compose_services_run_locally(tmp_path, redis_server, redis_url):
    """No Docker engine here: run each service's command from the compose file on this machine."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "worker", "flower", "sandbox"} <= set(services)
    assert "appendonly" in " ".join(services["redis"]["command"]) and services["redis"].get("healthcheck")
    assert services["sandbox"].get("profiles") == ["sandbox"]
    assert any(str(p).startswith("127.0.0.1:") for p in services["flower"]["ports"])
    sandbox_port, flower_port = free_port(), free_port()
    env = env_for(tmp_path, TAGMANGO_REDIS_URL=redis_url, TAGMANGO_API_URL=f"http://127.0.0.1:{sandbox_port}",
                  TAGMANGO_API_TOKEN="sandbox-token", FLOWER_BASIC_AUTH="a:b")

    def local(service: str, **subst: str) -> list[str]:
        cmd = services[service]["command"]
        cmd = cmd if isinstance(cmd, list) else cmd.split()
        return [subst.get(part, part) for part in cmd]

    procs = []
    try:
        sandbox_cmd = local("sandbox", **{"--host=0.0.0.0": "--host=127.0.0.1", "--port=8080": f"--port={sandbox_port}",
                                          "/home/importer/sandbox": str(tmp_path / "sandbox")})
        assert sandbox_cmd[0] == "tagmango-import"
        procs.append(subprocess.Popen([sys.executable, "-m", "importer", *sandbox_cmd[1:]], env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        worker_cmd = local("worker")
        assert worker_cmd[:2] == ["tagmango-import", "worker"]
        procs.append(subprocess.Popen([sys.executable, "-m", "importer", *worker_cmd[1:]], env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        flower_cmd = local("flower", **{"--address=0.0.0.0": "--address=127.0.0.1",
                                        "--port=5555": f"--port={flower_port}"})
        procs.append(subprocess.Popen([sys.executable, "-m", *flower_cmd], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        redis_cmd = services["redis"]["command"]
        assert redis_cmd[0] == "redis-server" and "--appendonly" in redis_cmd
        wait_until(lambda: _get(f"http://127.0.0.1:{sandbox_port}/_sandbox/stats", ("", "")) is not None, 30,
                   message="sandbox from compose")
        wait_until(lambda: _get(f"http://127.0.0.1:{flower_port}/api/workers", ("a", "b")) is not None, 40,
                   message="flower from compose")
        done = cli(tmp_path, "run", str(SAMPLES / "catalog_courses.csv"), "--host", HOST, "--json", "--results",
                   "r.csv", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["counts"]["succeeded"] == 20
        tasks = _get(f"http://127.0.0.1:{flower_port}/api/tasks", ("a", "b"))
        assert tasks and {t["name"] for t in tasks.values()} == {"tagmango.create_course"}
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
