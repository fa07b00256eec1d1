"""The sandbox answers as TagMango's docs say: shapes, auth, errors, rate limit, faults, persistence."""

from __future__ import annotations

import time

import httpx
import pytest

from importer.sandbox import SandboxConfig, serve_in_thread
from tests.helpers import HOST, TOKEN

DOC_CREATE = {"title": "My Course", "description": "<p>Course description</p>",
              "mangoes": ["66c4964c11e7fef26751f3a7"], "coverImage": "https://example.com/cover.jpg"}
CDN = "https://cdn.tagmango.com/"


def call(sandbox, method, path, *, token=TOKEN, host=HOST, headers=None, timeout=10, **kw):
    headers = {**({"x-whitelabel-host": host} if host else {}), **(headers or {})}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, sandbox.url + path, headers=headers, timeout=timeout, **kw)


def create(sandbox, **kw):
    return call(sandbox, "POST", "/api/v1/external/courses", json=DOC_CREATE, **kw)


def test_create_course_with_the_docs_curl_body_returns_a_bare_course(sandbox):
    r = create(sandbox)
    assert r.status_code == 200
    course = r.json()
    assert course["title"] == "My Course" and course["mangoes"] == DOC_CREATE["mangoes"]
    for key in ("_id", "modules", "firstChapter", "secondChapter", "settings", "createdAt", "isPublished"):
        assert key in course
    assert len(course["_id"]) == 24 and course["firstChapter"] != course["secondChapter"]


def test_created_chapters_can_be_patched_partially(sandbox):
    course = create(sandbox).json()
    path = f"/api/v1/external/chapters/{course['firstChapter']}"
    r = call(sandbox, "PATCH", path, json={"title": "Welcome", "additionalContents": [CDN + "a.pdf"]})
    assert r.status_code == 200 and r.json()["title"] == "Welcome"
    r = call(sandbox, "PATCH", path, json={"content": CDN + "v.mp4", "contentType": "video"})
    assert r.json()["title"] == "Welcome" and r.json()["contentType"] == "video"
    r = call(sandbox, "PATCH", path, json={"additionalContents": []})
    assert r.json()["additionalContents"] == [] and r.json()["content"] == CDN + "v.mp4"
    assert call(sandbox, "PATCH", path, json={}).json()["title"] == "Welcome"


@pytest.mark.parametrize("body", [{"content": CDN + "v.mp4"}, {"contentType": "video"},
                                  {"content": CDN + "v.mp4", "contentType": "hologram"}, {"isFree": "yes"}])
def test_update_chapter_rule_breaks_get_the_generic_400(sandbox, body):
    course = create(sandbox).json()
    r = call(sandbox, "PATCH", f"/api/v1/external/chapters/{course['firstChapter']}", json=body)
    assert r.status_code == 400
    assert r.json() == {"code": 400, "type": "Bad request", "statusMessage": "BAD_REQUEST",
                        "message": "Invalid request", "success": False}


def test_content_off_the_cdn_is_chapter_user_asset_not_found(sandbox):
    course = create(sandbox).json()
    r = call(sandbox, "PATCH", f"/api/v1/external/chapters/{course['firstChapter']}",
             json={"content": "https://example.com/video.mp4", "contentType": "video"})
    body = r.json()
    assert r.status_code == 400 and body["errorCode"] == "CHAPTER_USER_ASSET_NOT_FOUND"
    assert body["type"] == "Bad Request" and body["result"] == body["message"] and body["success"] is False


def test_strict_assets_need_registration(sandbox_factory):
    sb = sandbox_factory(strict_assets=True)
    chapter = create(sb).json()["firstChapter"]
    body = {"content": CDN + "late.mp4", "contentType": "video"}
    assert call(sb, "PATCH", f"/api/v1/external/chapters/{chapter}", json=body).status_code == 400
    httpx.post(sb.url + "/_sandbox/assets", json={"url": CDN + "late.mp4"})
    assert call(sb, "PATCH", f"/api/v1/external/chapters/{chapter}", json=body).status_code == 200


def test_unknown_token_and_missing_token_are_401_with_the_documented_body(sandbox):
    for token in ("wrong", None):
        r = create(sandbox, token=token)
        assert r.status_code == 401
        assert r.json() == {"code": 401, "type": "Unauthorized", "statusMessage": "UNAUTHORIZED",
                            "message": "Invalid token", "success": False}


def test_token_tied_to_a_host_is_refused_for_another_host(sandbox_factory):
    sb = sandbox_factory(tokens={TOKEN: HOST})
    assert create(sb).status_code == 200
    assert create(sb, host="other.example.com").status_code == 401


def test_missing_whitelabel_host_is_a_400(sandbox):
    assert create(sandbox, host=None).status_code == 400


def test_a_chapter_of_another_host_is_chapter_not_found(sandbox):
    chapter = create(sandbox).json()["firstChapter"]
    r = call(sandbox, "PATCH", f"/api/v1/external/chapters/{chapter}", host="other.example.com", json={"title": "x"})
    assert r.status_code == 404 and r.json()["errorCode"] == "CHAPTER_NOT_FOUND"
    r = call(sandbox, "PATCH", "/api/v1/external/chapters/0123456789abcdef01234567", json={"title": "x"})
    assert r.status_code == 404 and r.json()["type"] == "Not Found"


def test_not_creator_host_gets_403(sandbox_factory):
    sb = sandbox_factory(not_creator_hosts={HOST})
    r = create(sb)
    assert r.status_code == 403 and r.json()["errorCode"] == "COURSE_USER_NOT_CREATOR"
    assert r.json()["statusMessage"] == "FORBIDDEN"


def test_video_disabled_host_gets_403_for_video_only(sandbox_factory):
    sb = sandbox_factory(video_disabled_hosts={HOST})
    chapter = create(sb).json()["firstChapter"]
    path = f"/api/v1/external/chapters/{chapter}"
    r = call(sb, "PATCH", path, json={"content": CDN + "v.mp4", "contentType": "video"})
    assert r.status_code == 403 and r.json()["errorCode"] == "CHAPTER_VIDEO_UPLOAD_NOT_ENABLED"
    assert call(sb, "PATCH", path, json={"content": CDN + "a.pdf", "contentType": "pdf"}).status_code == 200


@pytest.mark.parametrize("body", [
    {**DOC_CREATE, "mangoes": ["0123456789abcdef01234567"]},  # unknown mango
    {**DOC_CREATE, "title": "  "},
    {**DOC_CREATE, "mangoes": []},
    {**DOC_CREATE, "settings": {"validityInDays": 0}},
    {**DOC_CREATE, "colour": "red"},
])
def test_bad_create_bodies_get_the_generic_400(sandbox, body):
    r = call(sandbox, "POST", "/api/v1/external/courses", json=body)
    assert r.status_code == 400 and r.json()["message"] == "Invalid request" and "errorCode" not in r.json()


def test_malformed_json_is_a_400(sandbox):
    r = call(sandbox, "POST", "/api/v1/external/courses", content=b"{not json",
             headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_get_courses_pages_and_filters_by_mango(sandbox):
    for i in range(5):
        call(sandbox, "POST", "/api/v1/external/courses", json={**DOC_CREATE, "title": f"C{i}"})
    call(sandbox, "POST", "/api/v1/external/courses",
         json={**DOC_CREATE, "title": "Other", "mangoes": ["66c4964c11e7fef26751f3a8"]})
    page = call(sandbox, "GET", "/api/v1/external/courses", params={"limit": 2, "page": 2}).json()
    assert page["total"] == 6 and len(page["data"]) == 2
    assert page["data"][0]["mangoes"][0].keys() == {"_id", "creator", "title"}
    only = call(sandbox, "GET", "/api/v1/external/courses", params={"mangoes": "66c4964c11e7fef26751f3a8"}).json()
    assert [c["title"] for c in only["data"]] == ["Other"]


def test_update_course_partial_and_empty_body_returns_course(sandbox):
    course = create(sandbox).json()
    path = f"/api/v1/external/courses/{course['_id']}"
    same = call(sandbox, "PATCH", path, json={}).json()
    assert same["firstChapter"] == course["firstChapter"] and same["title"] == "My Course"
    changed = call(sandbox, "PATCH", path, json={"description": "new"}).json()
    assert changed["description"] == "new" and changed["title"] == "My Course"
    r = call(sandbox, "PATCH", "/api/v1/external/courses/0123456789abcdef01234567", json={})
    assert r.status_code == 404 and r.json()["errorCode"] == "COURSE_NOT_FOUND"


@pytest.mark.parametrize("mode", ["result", "data"])
def test_envelopes_wrap_success_bodies(sandbox_factory, mode):
    sb = sandbox_factory(envelope=mode)
    body = create(sb).json()
    assert body["success"] is True and body[mode]["title"] == "My Course"


def test_the_121st_request_in_10_seconds_gets_the_documented_429(sandbox):
    statuses = [call(sandbox, "GET", "/api/v1/external/courses").status_code for _ in range(121)]
    assert statuses[:120] == [200] * 120
    assert statuses[120] == 429
    r = call(sandbox, "GET", "/api/v1/external/courses")
    assert r.json() == {"statusCode": 429, "message": "Too many requests, please try again later", "success": False}
    stats = sandbox.stats()
    assert stats["rate_limited"] == 2 and stats["max_in_window"] == 120


def test_rate_limit_is_per_token(sandbox_factory):
    sb = sandbox_factory(tokens={TOKEN: None, "second-token": None}, rate_limit=3)
    assert [create(sb).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert create(sb, token="second-token").status_code == 200


def test_faults_5xx_drop_and_hang(sandbox_factory):
    sb = sandbox_factory(error_rate=1.0)
    r = create(sb)
    assert r.status_code in (500, 502, 503) and r.json()["success"] is False
    assert sb.stats()["courses_by_host"] == {}
    sb.configure(error_rate=0.0, drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        create(sb)
    sb.configure(drop_rate=0.0, hang_rate=1.0, hang_s=3.0)
    with pytest.raises(httpx.ReadTimeout):
        call(sb, "GET", "/api/v1/external/courses", timeout=httpx.Timeout(5, read=0.5))
    assert sb.stats()["faults"] == {"error": 1, "drop": 1, "hang": 1}


def test_committed_but_failed_create_leaves_the_course_behind(sandbox_factory):
    sb = sandbox_factory(commit_fail_rate=1.0, hang_s=1.0)
    for _ in range(4):
        r = create(sb)
        assert r.status_code in (502, 504)
    stats = sb.stats()
    assert stats["courses_by_host"] == {HOST: 4}
    assert stats["duplicate_titles"] == {HOST: {"My Course": 4}}


def test_latency_is_added(sandbox_factory):
    sb = sandbox_factory(latency_s=(0.2, 0.2))
    started = time.perf_counter()
    create(sb)
    assert time.perf_counter() - started >= 0.2


def test_state_dir_keeps_courses_across_restarts(tmp_path):
    first = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, state_dir=tmp_path))
    course = create(first).json()
    first.stop()
    second = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, state_dir=tmp_path))
    try:
        r = call(second, "PATCH", f"/api/v1/external/chapters/{course['secondChapter']}", json={"title": "Still here"})
        assert r.status_code == 200
        assert second.stats()["courses_by_host"] == {HOST: 1}
    finally:
        second.stop()
