"""The issue's acceptance, as a new user runs it: run --sandbox --keep-running --flower, then dashboard
(looked at in Chromium), Flower's task table, and stop leaving no process of the import running."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import time

import httpx
import psutil

from importer.local.state import Registry
from importer.local.stop import stop_all
from importer.report.troubleshooting import advice
from tests.browser import chrome, quit_chrome, require_chromium
from tests.helpers import SAMPLES, cli, env_for
from tests.services import free_port, wait_until

DASH = ("ops", "dash-pw-2")
FLOWER = ("ops", "flower-pw-2")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_keep_running_then_dashboard_flower_and_stop(tmp_path):
    require_chromium()
    shutil.copy(SAMPLES / "catalog.xlsx", tmp_path / "catalog.xlsx")
    state = tmp_path / "state"
    env = env_for(tmp_path, TAGMANGO_FLOWER_BASIC_AUTH=":".join(FLOWER),
                  TAGMANGO_DASHBOARD_BASIC_AUTH=":".join(DASH))
    dashboard = None
    try:
        done = cli(tmp_path, "run", "catalog.xlsx", "--sandbox", "--keep-running", "--flower", env=env)
        assert done.returncode == 1, done.stdout + done.stderr
        assert (tmp_path / "catalog.results.xlsx").exists(), done.stdout + done.stderr
        job_id = done.stdout.split("Enqueued ")[1].split(":")[0]

        # Flower started before the first row was queued: it saw every row sent, with job, sheet:row and title
        # (49: the chapter id that does not exist is found dead while matching against TagMango, never sent).
        flower_url = (state / "flower" / "url").read_text()
        tasks = wait_until(lambda: (t := httpx.get(f"{flower_url}/api/tasks", auth=FLOWER, timeout=5).json())
                           and len({ast.literal_eval(v["args"])[1] for v in t.values()}) >= 49 and t, 30,
                           message="all 49 sent rows in Flower")
        args = [ast.literal_eval(t["args"]) for t in tasks.values()]
        assert {a[0] for a in args} == {job_id} and ("chapters:30", "Welcome") in {(a[1], a[2]) for a in args}
        table = httpx.get(f"{flower_url}/tasks", auth=FLOWER, timeout=5).text
        assert 'data-column="args"' in table
        search = httpx.get(f"{flower_url}/tasks/datatable", auth=FLOWER, timeout=5, params={
            "draw": 1, "start": 0, "length": 100, "search[value]": job_id, "order[0][column]": 0,
            "columns[0][data]": "received", "order[0][dir]": "desc"}).json()
        assert search["recordsFiltered"] >= 49 and job_id in search["data"][0]["args"]
        assert "dashboard" in search["data"][0]  # format_task's link back to the job's page

        port = free_port()
        dashboard = subprocess.Popen([sys.executable, "-m", "importer", "dashboard", "--port", str(port)],
                                     cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _status(base) == 200, 30, message="dashboard")
        driver = chrome(basic_auth=DASH)
        try:
            driver.get(f"{base}/jobs/{job_id}")
            assert driver.find_element("id", "count-succeeded").text == "48"
            assert driver.find_element("id", "count-dead").text == "2"
            body = driver.find_element("tag name", "body").text
            for code in ("CHAPTER_USER_ASSET_NOT_FOUND", "CHAPTER_NOT_FOUND"):
                assert code in body and advice(code).fix.replace("`", "") in body
            svg = driver.find_element("id", "rate-chart")
            assert int(svg.get_attribute("data-sent")) >= 49 and svg.size["height"] > 100
            assert driver.find_element("id", "flower-link").get_attribute("href") == f"{flower_url}/tasks"
        finally:
            quit_chrome(driver)

        roles = {entry.role: entry.pid for entry in Registry(state).entries()}
        assert {"dashboard", "flower", "worker", "sandbox", "redis"} <= set(roles), roles
        pids = list(roles.values())
        started = time.monotonic()
        stopped = cli(tmp_path, "stop", env=env, timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        for name in ("dashboard: stopped", "Flower: stopped", "worker: stopped", "sandbox: stopped",
                     "Redis: shut down cleanly"):
            assert name in stopped.stdout, stopped.stdout
        dashboard.wait(timeout=10)
        assert all(_gone(pid) for pid in pids), [(p, psutil.Process(p).cmdline()) for p in pids if not _gone(p)]
        assert time.monotonic() - started < 60

        # tagmango-import flower later: its persistent state still has the import it saw.
        port = free_port()
        flower = subprocess.Popen([sys.executable, "-m", "importer", "flower", "--port", str(port)], cwd=tmp_path,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            seen = wait_until(lambda: _tasks(f"http://127.0.0.1:{port}"), 30, message="Flower from its saved state")
            assert len(seen) >= 49 and all(job_id in t["args"] for t in seen.values())
        finally:
            flower.terminate()
            flower.wait(timeout=20)
        assert "Redis: shut down cleanly" in cli(tmp_path, "stop", env=env).stdout  # the Redis `flower` started
        assert "nothing was running" in cli(tmp_path, "stop", env=env).stdout
    finally:
        if dashboard is not None and dashboard.poll() is None:
            dashboard.kill()
        stop_all(state)


def _tasks(url: str) -> dict:
    try:
        r = httpx.get(f"{url}/api/tasks", auth=FLOWER, timeout=2)
        return r.json() if r.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


def _status(url: str) -> int:
    try:
        return httpx.get(url, auth=DASH, timeout=2).status_code
    except httpx.HTTPError:
        return 0
