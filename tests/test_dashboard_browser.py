"""The dashboard in a real browser (headless Chromium) during a real import: real Redis, a real Celery
worker, the sandbox over HTTP. The page must show progress moving, draw the rate chart with data, group
the dead letters with their fixes, and requeue a fixed dead row from its button until it succeeds.

``DASHBOARD_SCREENSHOTS=docs/screenshots pytest tests/test_dashboard_browser.py`` refreshes the README's
screenshots."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from importer.dashboard import chart
from importer.report.troubleshooting import advice
from tests.browser import chrome, quit_chrome, require_chromium, screenshot
from tests.helpers import HOST, TOKEN
from tests.services import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
AUTH = ("ops", "dash-pw-1")


def start_dashboard(env: dict, port: int, log: Path) -> subprocess.Popen:
    env = {**env, "TAGMANGO_DASHBOARD_BASIC_AUTH": ":".join(AUTH)}
    proc = subprocess.Popen([sys.executable, "-m", "importer", "dashboard", "--port", str(port)], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", auth=AUTH, timeout=2).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None  # died: stop waiting, the assert below says so
    wait_until(up, 30, message="dashboard")
    assert proc.poll() is None, log.read_text()
    return proc


def number(driver, element_id: str) -> int:
    """The integer shown in an element; re-found each time, since the page reloads itself (an element can
    vanish between finding and reading it: stale, or "node does not belong to the document")."""
    from selenium.common.exceptions import WebDriverException

    for _ in range(10):
        try:
            return int(driver.find_element("id", element_id).text)
        except (WebDriverException, ValueError):
            time.sleep(0.2)
    raise AssertionError(f"#{element_id} not on the page:\n{driver.page_source[:2000]}")


def text_of(driver) -> str:
    from selenium.common.exceptions import WebDriverException

    for _ in range(10):
        try:
            return driver.find_element("tag name", "body").text
        except WebDriverException:
            time.sleep(0.2)
    return ""


def _try_screenshot(driver, name: str, folder: Path) -> None:
    """A screenshot of a page that may reload meanwhile: nice to have, not part of the test."""
    from selenium.common.exceptions import WebDriverException

    try:
        screenshot(driver, name, folder)
    except WebDriverException:
        pass


def test_dashboard_in_chromium_during_an_import(sandbox, make_env, workers, redis_url, tmp_path):
    require_chromium()
    from importer.ingest.validate import build_plan
    from tasks.enqueue import enqueue
    from tasks.rowstore import RowStore

    started = time.monotonic()
    # 5 requests/s: the import takes about ten seconds, long enough to watch it move.
    env = make_env(sandbox, TAGMANGO_RATE_LIMIT="50", TAGMANGO_STATE_DIR=str(tmp_path / "state"))
    workers.start(env, 1)
    port = free_port()
    dashboard = start_dashboard(env, port, tmp_path / "dashboard.log")
    driver = chrome(basic_auth=AUTH)
    shots = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path / "shots")
    try:
        store = RowStore.from_url(redis_url)
        job_id = enqueue(store, build_plan([ROOT / "sample_data" / "catalog.xlsx"]), sandbox.url, HOST)
        base = f"http://127.0.0.1:{port}"

        driver.get(base + "/")
        assert job_id in text_of(driver)  # the jobs list
        driver.find_element("link text", job_id).click()
        assert driver.current_url.endswith(f"/jobs/{job_id}")

        # Progress moves without anyone reloading: the page refreshes itself while the job runs.
        first = number(driver, "count-succeeded")
        assert "running" in text_of(driver) or first == 48, text_of(driver)
        wait_until(lambda: number(driver, "count-succeeded") > first, 30, message="progress on the page")
        if number(driver, "count-succeeded") < 40:
            _try_screenshot(driver, "dashboard-running.png", shots)
        wait_until(lambda: "finished" in text_of(driver), 60, interval=0.5, message="the job to finish on the page")
        assert number(driver, "count-succeeded") == 48 and number(driver, "count-dead") == 2
        assert number(driver, "course-succeeded") == 20 and number(driver, "chapter-dead") == 2

        # The chart: an SVG with a line of real points, the limit line, and the totals it was drawn from.
        svg = driver.find_element("id", "rate-chart")
        assert int(svg.get_attribute("data-sent")) >= 50 and float(svg.get_attribute("data-limit")) == 5.0
        points = driver.find_element("id", "sent-line").get_attribute("points").split()
        assert len(points) >= 3 and svg.size["height"] > 100
        limit_y = float(driver.find_element("id", "limit-line").get_attribute("y1"))
        assert 0 < limit_y < chart.HEIGHT
        assert float(svg.get_attribute("data-max-rate")) > 1

        # Dead letters grouped by code, each with its meaning and fix, and the rows behind it.
        for code, row in (("CHAPTER_USER_ASSET_NOT_FOUND", "30"), ("CHAPTER_NOT_FOUND", "31")):
            group = driver.find_element("css selector", f'.group[data-code="{code}"]').text
            assert advice(code).fix.replace("`", "") in group and advice(code).meaning.replace("`", "") in group
            assert f"chapters {row}" in group
        assert TOKEN not in driver.page_source
        screenshot(driver, "dashboard-job.png", shots)

        # Fix the cause on TagMango's side (the content's host becomes an accepted CDN), then requeue
        # that code from its button: the row succeeds.
        sandbox.sandbox.config.cdn_prefix = "https://"
        driver.find_element("id", "requeue-CHAPTER_USER_ASSET_NOT_FOUND").click()
        assert "Requeued 1 row(s)" in text_of(driver)
        wait_until(lambda: number(driver, "count-succeeded") == 49 and "finished" in text_of(driver), 40,
                   interval=0.5, message="the requeued row to succeed on the page")
        assert number(driver, "count-dead") == 1
        assert store.row(job_id, "chapters:30").state == "succeeded"
        assert driver.find_elements("css selector", '.group[data-code="CHAPTER_USER_ASSET_NOT_FOUND"]') == []
    finally:
        quit_chrome(driver)
        dashboard.terminate()
        dashboard.wait(timeout=20)
    assert time.monotonic() - started < 90


def test_actions_need_post_auth_and_a_token_from_the_page(redis_url, tmp_path):
    """Without a browser: the requeue action refuses GET, missing auth, a missing or foreign CSRF token, and
    a cross-site Origin or Referer."""
    import re

    from importer.ingest.validate import build_plan
    from tasks.enqueue import create_job
    from tasks.producer import mark_dead
    from tasks.rows import RowFailure
    from tasks.rowstore import RowStore

    store = RowStore.from_url(redis_url)
    job_id = create_job(store, build_plan([ROOT / "sample_data" / "catalog.xlsx"]), "http://127.0.0.1:9", HOST)
    rec = store.row(job_id, "chapters:31")
    mark_dead(store, job_id, rec, RowFailure("CHAPTER_NOT_FOUND", "gone", 404))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGMANGO_")}
    env.update(TAGMANGO_REDIS_URL=redis_url, TAGMANGO_STATE_DIR=str(tmp_path / "state"))
    port = free_port()
    proc = start_dashboard(env, port, tmp_path / "dashboard.log")
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/jobs/{job_id}/requeue"
    try:
        assert httpx.get(f"{base}/jobs/{job_id}").status_code == 401
        assert httpx.get(f"{base}/jobs/{job_id}", auth=("ops", "wrong")).status_code == 401
        page = httpx.get(f"{base}/jobs/{job_id}", auth=AUTH).text
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        form = {"code": "CHAPTER_NOT_FOUND", "csrf": token}
        assert httpx.get(url, auth=AUTH).status_code == 405
        assert httpx.post(url, data=form).status_code == 401
        assert httpx.post(url, data={**form, "csrf": "0" * 64}, auth=AUTH, headers={"Origin": base}).status_code == 403
        assert httpx.post(url, data=form, auth=AUTH, headers={"Origin": "http://evil.example"}).status_code == 403
        assert httpx.post(url, data=form, auth=AUTH, headers={"Referer": "http://evil.example/x"}).status_code == 403
        assert httpx.post(url, data=form, auth=AUTH).status_code == 403  # neither Origin nor Referer
        assert httpx.get(f"{base}/", auth=AUTH, headers={"Host": "evil.example"}).status_code == 400
        assert store.row(job_id, "chapters:31").state == "dead"  # nothing above requeued it
        done = httpx.post(url, data=form, auth=AUTH, headers={"Origin": base})
        assert done.status_code == 303 and "requeued=1" in done.headers["location"]
        assert store.row(job_id, "chapters:31").state == "queued"
        results = httpx.get(f"{base}/jobs/{job_id}/results", auth=AUTH)
        assert results.status_code == 200 and "catalog.results.xlsx" in results.headers["content-disposition"]
        assert results.content[:2] == b"PK"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_undo_from_the_job_page_in_chromium(sandbox, services_factory, make_env, workers, redis_url, tmp_path):
    """A merge that changed a course description and a lesson title: the job page shows its snapshot, and the Undo
    button (POST + CSRF) puts both values back through a real worker; the undo's page links back to the job."""
    require_chromium()
    from importer.ingest.validate import build_plan
    from importer.matching import match_live
    from tasks.credentials import Credential
    from tasks.enqueue import enqueue
    from tests.helpers import MANGO, run_in_process

    services = services_factory(rate_limit=1000)
    store, door = services.store, services.gateway.door(Credential(sandbox.url, HOST, TOKEN))
    header = "course_ref,course_title,course_description,mangoes,module_title,chapter_title,chapter_description\n"
    tree = tmp_path / "tree.csv"
    jobs = []
    for description, title in (("About", "Paper"), ("About watercolour", "Good paper")):
        tree.write_text(header + f"K1,Watercolour,{description},{MANGO},Materials,{title},p\n"
                                 f"K1,Watercolour,{description},{MANGO},Materials,Brushes,b\n")
        plan = build_plan([tree])
        match_live(door, store, plan, "merge", quiet=True)
        jobs.append(enqueue(store, plan, sandbox.url, HOST, mode="merge"))
        run_in_process(services, jobs[-1])
    job_id = jobs[-1]
    course = sandbox.tree(HOST)[0]
    assert course["description"] == "About watercolour" and course["modules"][0]["chapters"][0]["title"] == "Good paper"

    env = make_env(sandbox, TAGMANGO_STATE_DIR=str(tmp_path / "state"))
    workers.start(env, 1)
    port = free_port()
    dashboard = start_dashboard(env, port, tmp_path / "dashboard.log")
    driver = chrome(basic_auth=AUTH)
    shots = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path / "shots")
    try:
        driver.get(f"http://127.0.0.1:{port}/jobs/{job_id}")
        assert number(driver, "snapshot-rows") == 2 and "characters" in text_of(driver)
        screenshot(driver, "dashboard-undo.png", shots)
        driver.find_element("id", "undo-button").click()
        wait_until(lambda: "/jobs/imp-" in driver.current_url and job_id not in driver.current_url, 60,
                   message="the undo's page")
        # the flash ("Undo of … started: 2 value(s) to put back") shows until the running page reloads itself
        assert f"This job undoes {job_id}" in text_of(driver)
        wait_until(lambda: "finished" in text_of(driver), 60, interval=0.5, message="the undo to finish")
        course = sandbox.tree(HOST)[0]
        assert course["description"] == "About" and course["modules"][0]["chapters"][0]["title"] == "Paper"
        assert number(driver, "snapshot-rows") == 2  # the undo kept what it overwrote: it can be undone too
        screenshot(driver, "dashboard-undone.png", shots)
        driver.get(f"http://127.0.0.1:{port}/jobs/{job_id}")
        assert "Undone by" in text_of(driver)
        driver.find_element("id", "undo-button").click()  # again: the values changed since the job, refused
        wait_until(lambda: "Undo refused" in text_of(driver), 60, message="the refusal")
        assert driver.find_element("id", "flash").get_attribute("class") == "card error"
        screenshot(driver, "dashboard-undo-refused.png", shots)
    finally:
        quit_chrome(driver)
        dashboard.terminate()
        dashboard.wait(timeout=20)
