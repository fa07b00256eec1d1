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


# -- course trees: modules, chapters, deletes (5.4-5.8) -------------------------------------------------

API = "/api/v1/external"
GENERIC_400 = {"code": 400, "type": "Bad request", "statusMessage": "BAD_REQUEST", "message": "Invalid request",
               "success": False}
CHAPTER_FIELDS = {"_id", "title", "description", "content", "contentType", "contentFileName", "contentSize",
                  "module", "creator", "course", "compressedVideoUrl", "totalDuration", "assignment",
                  "customThumbnail", "embeddedLink", "createdAt", "updatedAt", "defaultThumbnail", "isFree",
                  "additionalContents"}


def not_found(code):
    from importer.sandbox.answers import MESSAGES

    text = MESSAGES[code]
    return {"code": 404, "type": "Not Found", "statusMessage": "NOT_FOUND", "errorCode": code, "message": text,
            "result": text, "success": False}


def new_module(sb, course_id, title="Module", **kw):
    return call(sb, "POST", f"{API}/courses/{course_id}/modules", json={"title": title}, **kw)


def new_chapter(sb, module_id, body=None, **kw):
    return call(sb, "POST", f"{API}/modules/{module_id}/chapters", json=body or lesson("Lesson"), **kw)


def lesson(title, **extra):
    return {"title": title, "description": f"About {title}", **extra}


def read_module(sb, module_id, **kw):
    return call(sb, "PATCH", f"{API}/modules/{module_id}", json={}, **kw)


def read_course(sb, course_id):
    return call(sb, "PATCH", f"{API}/courses/{course_id}", json={}).json()


def test_create_course_makes_one_module_holding_the_two_placeholder_chapters(sandbox):
    course = create(sandbox).json()
    assert len(course["modules"]) == 1
    module = read_module(sandbox, course["modules"][0]).json()
    assert module["chapters"] == [course["firstChapter"], course["secondChapter"]]
    assert module["course"] == course["_id"]
    for chapter_id in module["chapters"]:
        chapter = call(sandbox, "PATCH", f"{API}/chapters/{chapter_id}", json={}).json()
        assert (chapter["module"], chapter["course"]) == (module["_id"], course["_id"])


def test_create_module_answers_the_documented_module_and_appends_in_order(sandbox):
    course = create(sandbox).json()
    made = []
    for title in ("Introduction", "Basics", "Introduction"):  # titles may repeat: order is by creation
        r = new_module(sandbox, course["_id"], title)
        assert r.status_code == 200
        module = r.json()
        assert module.keys() == {"createdAt", "updatedAt", "_id", "title", "creator", "course", "chapters"}
        assert (module["title"], module["course"], module["chapters"]) == (title, course["_id"], [])
        assert module["creator"] == course["creator"] and len(module["_id"]) == 24
        made.append(module["_id"])
    assert read_course(sandbox, course["_id"])["modules"] == [course["modules"][0], *made]


def test_create_module_in_an_unknown_or_foreign_course_is_course_not_found(sandbox):
    course = create(sandbox).json()
    unknown = (("0123456789abcdef01234567", HOST), ("not-an-id", HOST), (course["_id"], "other.example.com"))
    for course_id, host in unknown:
        r = new_module(sandbox, course_id, host=host)
        assert r.status_code == 404 and r.json() == not_found("COURSE_NOT_FOUND")
    assert read_course(sandbox, course["_id"])["modules"] == course["modules"]


@pytest.mark.parametrize("body", [{}, {"title": ""}, {"title": "   "}, {"title": 5}, {"title": None},
                                  {"title": "Intro", "description": "x"}, ["Intro"]])
def test_bad_create_module_bodies_get_the_generic_400_and_create_nothing(sandbox, body):
    course = create(sandbox).json()
    r = call(sandbox, "POST", f"{API}/courses/{course['_id']}/modules", json=body)
    assert r.status_code == 400 and r.json() == GENERIC_400
    assert read_course(sandbox, course["_id"])["modules"] == course["modules"]
    assert sandbox.stats()["objects_by_host"][HOST]["modules"] == 1


def test_update_module_renames_and_an_empty_body_only_reads(sandbox):
    course = create(sandbox).json()
    module_id = course["modules"][0]
    before = read_module(sandbox, module_id).json()
    renamed = call(sandbox, "PATCH", f"{API}/modules/{module_id}", json={"title": "Getting started"}).json()
    assert renamed["title"] == "Getting started" and renamed["chapters"] == before["chapters"]
    again = read_module(sandbox, module_id).json()
    assert again == renamed  # {} changes nothing, not even updatedAt
    for body in ({"title": ""}, {"chapters": []}, {"title": 3}):
        r = call(sandbox, "PATCH", f"{API}/modules/{module_id}", json=body)
        assert r.status_code == 400 and r.json() == GENERIC_400
    for module, host in (("0123456789abcdef01234567", HOST), (module_id, "other.example.com")):
        r = call(sandbox, "PATCH", f"{API}/modules/{module}", host=host, json={"title": "x"})
        assert r.status_code == 404 and r.json() == not_found("MODULE_NOT_FOUND")
    assert read_module(sandbox, module_id).json()["title"] == "Getting started"


def test_create_chapter_answers_the_documented_chapter_and_appends_in_order(sandbox):
    course = create(sandbox).json()
    module_id = course["modules"][0]
    first = new_chapter(sandbox, module_id, lesson("Welcome", content=CDN + "a/intro.mp4", contentType="video",
                                                   isFree=True, embeddedLink="https://www.youtube.com/embed/x",
                                                   additionalContents=[CDN + "notes.pdf"]))
    assert first.status_code == 200
    chapter = first.json()
    assert chapter.keys() == CHAPTER_FIELDS
    assert (chapter["module"], chapter["course"], chapter["creator"]) == (module_id, course["_id"], course["creator"])
    assert (chapter["title"], chapter["description"], chapter["content"], chapter["contentType"]) == (
        "Welcome", "About Welcome", CDN + "a/intro.mp4", "video")
    assert chapter["isFree"] is True and chapter["additionalContents"] == [CDN + "notes.pdf"]
    assert chapter["contentFileName"] == "intro.mp4"
    second = new_chapter(sandbox, module_id, lesson("Welcome")).json()  # same title again: a new chapter
    assert second["content"] is None and second["isFree"] is False and second["additionalContents"] == []
    module = read_module(sandbox, module_id).json()
    assert module["chapters"] == [course["firstChapter"], course["secondChapter"], chapter["_id"], second["_id"]]


@pytest.mark.parametrize("body", [
    {"title": "No description"},
    {"title": "Blank description", "description": " "},
    {"description": "No title"},
    {"title": "", "description": "x"},
    lesson("Content alone", content=CDN + "v.mp4"),
    lesson("Type alone", contentType="video"),
    lesson("Odd type", content=CDN + "v.mp4", contentType="hologram"),
    lesson("Bad flag", isFree="yes"),
    lesson("Bad extras", additionalContents=CDN + "a.pdf"),
    lesson("Unknown field", duration=30),
])
def test_bad_create_chapter_bodies_get_the_generic_400_and_create_nothing(sandbox, body):
    course = create(sandbox).json()
    r = new_chapter(sandbox, course["modules"][0], body)
    assert r.status_code == 400 and r.json() == GENERIC_400
    assert len(read_module(sandbox, course["modules"][0]).json()["chapters"]) == 2


def test_create_chapter_follows_the_content_rules_of_update_chapter(sandbox_factory):
    sb = sandbox_factory(video_disabled_hosts={HOST}, strict_assets=True)
    module_id = create(sb).json()["modules"][0]
    r = new_chapter(sb, module_id, lesson("Off CDN", content="https://example.com/video.mp4", contentType="video"))
    assert r.status_code == 400 and r.json()["errorCode"] == "CHAPTER_USER_ASSET_NOT_FOUND"
    assert r.json()["type"] == "Bad Request" and r.json()["result"] == r.json()["message"]
    not_uploaded = lesson("Not uploaded", content=CDN + "notes.pdf", contentType="pdf")
    assert new_chapter(sb, module_id, not_uploaded).json()["errorCode"] == "CHAPTER_USER_ASSET_NOT_FOUND"
    for url in ("notes.pdf", "v.mp4"):
        httpx.post(sb.url + "/_sandbox/assets", json={"url": CDN + url})
    r = new_chapter(sb, module_id, lesson("Video", content=CDN + "v.mp4", contentType="video"))
    assert r.status_code == 403 and r.json()["errorCode"] == "CHAPTER_VIDEO_UPLOAD_NOT_ENABLED"
    assert len(read_module(sb, module_id).json()["chapters"]) == 2
    assert new_chapter(sb, module_id, not_uploaded).status_code == 200
    assert len(read_module(sb, module_id).json()["chapters"]) == 3


def test_create_chapter_in_an_unknown_or_foreign_module_is_module_not_found(sandbox):
    module_id = create(sandbox).json()["modules"][0]
    for module, host in (("0123456789abcdef01234567", HOST), (module_id, "other.example.com")):
        r = new_chapter(sandbox, module, host=host)
        assert r.status_code == 404 and r.json() == not_found("MODULE_NOT_FOUND")
    r = new_chapter(sandbox, "0123456789abcdef01234567", {"title": "no description either"})
    assert r.status_code == 404  # the module is looked up before the body is checked


def test_delete_chapter_answers_empty_and_takes_it_out_of_its_module(sandbox):
    course = create(sandbox).json()
    module_id = course["modules"][0]
    extra = new_chapter(sandbox, module_id).json()
    r = call(sandbox, "DELETE", f"{API}/chapters/{course['firstChapter']}", host="other.example.com")
    assert r.status_code == 404 and r.json() == not_found("CHAPTER_NOT_FOUND")
    r = call(sandbox, "DELETE", f"{API}/chapters/{course['firstChapter']}")
    assert r.status_code == 200 and r.content == b""
    assert read_module(sandbox, module_id).json()["chapters"] == [course["secondChapter"], extra["_id"]]
    again = call(sandbox, "DELETE", f"{API}/chapters/{course['firstChapter']}")
    assert again.status_code == 404 and again.json() == not_found("CHAPTER_NOT_FOUND")
    patch = call(sandbox, "PATCH", f"{API}/chapters/{course['firstChapter']}", json={"title": "back?"})
    assert patch.status_code == 404 and patch.json()["errorCode"] == "CHAPTER_NOT_FOUND"
    r = call(sandbox, "DELETE", f"{API}/chapters/0123456789abcdef01234567")
    assert r.status_code == 404 and r.json()["errorCode"] == "CHAPTER_NOT_FOUND"
    counts = sandbox.stats()["objects_by_host"][HOST]
    assert counts == {"courses": 1, "modules": 1, "chapters": 2, "deleted_chapters": 1}


@pytest.mark.parametrize("mode", ["result", "data"])
def test_envelopes_wrap_tree_endpoints_and_a_delete_has_a_null_payload(sandbox_factory, mode):
    sb = sandbox_factory(envelope=mode)
    course = create(sb).json()[mode]
    module = new_module(sb, course["_id"], "Wrapped").json()
    assert module["success"] is True and module[mode]["title"] == "Wrapped"
    chapter = new_chapter(sb, module[mode]["_id"]).json()[mode]
    assert read_module(sb, module[mode]["_id"]).json()[mode]["chapters"] == [chapter["_id"]]
    r = call(sb, "DELETE", f"{API}/chapters/{chapter['_id']}")
    assert r.status_code == 200 and r.json()["success"] is True and r.json()[mode] is None


def test_faults_apply_to_module_and_chapter_creates(sandbox_factory):
    sb = sandbox_factory()
    course = create(sb).json()
    sb.configure(error_rate=1.0)
    assert new_module(sb, course["_id"]).status_code in (500, 502, 503)
    assert new_chapter(sb, course["modules"][0]).status_code in (500, 502, 503)
    assert call(sb, "DELETE", f"{API}/chapters/{course['firstChapter']}").status_code in (500, 502, 503)
    sb.configure(error_rate=0.0)
    assert sb.stats()["objects_by_host"][HOST] == {"courses": 1, "modules": 1, "chapters": 2, "deleted_chapters": 0}


def test_committed_but_failed_module_and_chapter_creates_leave_the_object_behind(sandbox_factory):
    sb = sandbox_factory()
    course = create(sb).json()
    sb.configure(commit_fail_rate=1.0, hang_s=0.3)
    for _ in range(2):  # a client that retries blindly after each failed answer
        assert new_module(sb, course["_id"], "Week 1").status_code in (502, 504)
    for _ in range(2):
        assert new_chapter(sb, course["modules"][0], lesson("Quiz")).status_code in (502, 504)
    modules = read_course(sb, course["_id"])["modules"]
    assert len(modules) == 3
    assert [read_module(sb, m).json()["title"] for m in modules[1:]] == ["Week 1", "Week 1"]
    assert len(read_module(sb, modules[0]).json()["chapters"]) == 4
    stats = sb.stats()
    assert stats["faults"]["commit_fail"] == 4
    assert stats["duplicate_creates"] == {HOST: {course["_id"]: {
        "modules": [{"title": "Week 1", "count": 2}],
        "chapters": [{"module": modules[0], "title": "Quiz", "count": 2}]}}}


def test_reads_and_writes_are_counted_apart(sandbox):
    course = create(sandbox).json()                                                        # write
    module_id, chapter_id = course["modules"][0], course["firstChapter"]
    call(sandbox, "GET", f"{API}/courses")                                                 # read
    read_course(sandbox, course["_id"])                                                    # read
    read_module(sandbox, module_id)                                                        # read
    call(sandbox, "PATCH", f"{API}/chapters/{chapter_id}")                                 # read (no body)
    call(sandbox, "PATCH", f"{API}/chapters/{chapter_id}", json={"title": "Intro"})        # write
    call(sandbox, "PATCH", f"{API}/modules/0123456789abcdef01234567", json={"title": "x"})  # write (refused)
    new_module(sandbox, course["_id"])                                                     # write
    new_chapter(sandbox, module_id)                                                        # write
    call(sandbox, "DELETE", f"{API}/chapters/{chapter_id}")                                # write
    stats = sandbox.stats()
    assert (stats["reads"], stats["writes"]) == (4, 6)
    assert stats["writes_by_route"] == {"create_course": 1, "update_chapter": 1, "update_module": 1,
                                        "create_module": 1, "create_chapter": 1, "delete_chapter": 1}
    assert stats["requests"] == 10


def test_tree_view_shows_each_course_with_modules_and_chapters_in_order(sandbox):
    course = create(sandbox).json()
    placeholder = course["modules"][0]
    call(sandbox, "PATCH", f"{API}/modules/{placeholder}", json={"title": "Module 0"})
    call(sandbox, "PATCH", f"{API}/chapters/{course['firstChapter']}", json=lesson("Concept Guide"))
    call(sandbox, "DELETE", f"{API}/chapters/{course['secondChapter']}")
    second = new_module(sandbox, course["_id"], "Module 1").json()["_id"]
    for title in ("Concept Guide", "Module Quiz", "Concept Guide"):
        new_chapter(sandbox, second, lesson(title, content=CDN + "c.pdf", contentType="pdf"))
    new_module(sandbox, course["_id"], "Empty module")
    create(sandbox, host="other.example.com")

    answer = httpx.get(sandbox.url + "/_sandbox/tree", params={"host": HOST}).json()
    assert answer["host"] == HOST and len(answer["courses"]) == 1
    tree = answer["courses"][0]
    assert tree["_id"] == course["_id"] and tree["title"] == "My Course" and tree["mangoes"] == DOC_CREATE["mangoes"]
    assert "_host" not in tree and all(m.keys() == {"_id", "title", "chapters"} for m in tree["modules"])

    def shape(chapter):
        assert len(chapter.pop("_id")) == 24
        return chapter

    got = [(m["title"], [shape(c) for c in m["chapters"]]) for m in tree["modules"]]
    pdf = {"content": CDN + "c.pdf", "contentType": "pdf", "isFree": False, "embeddedLink": None,
           "additionalContents": []}
    none = {"content": None, "contentType": None, "isFree": False, "embeddedLink": None, "additionalContents": []}
    assert got == [
        ("Module 0", [{"title": "Concept Guide", "description": "About Concept Guide", **none}]),
        ("Module 1", [{"title": t, "description": f"About {t}", **pdf}
                      for t in ("Concept Guide", "Module Quiz", "Concept Guide")]),
        ("Empty module", []),
    ]
    assert sandbox.tree(HOST) == httpx.get(sandbox.url + "/_sandbox/data",
                                           params={"host": HOST, "tree": "1"}).json()["courses"]
    assert len(sandbox.tree("other.example.com")) == 1 and sandbox.tree("nobody.example.com") == []
    assert httpx.get(sandbox.url + "/_sandbox/tree").status_code == 400


def test_state_dir_keeps_trees_and_deletes_across_restarts(tmp_path):
    config = dict(tokens={TOKEN: None}, state_dir=tmp_path)
    first = serve_in_thread(SandboxConfig(**config))
    course = create(first).json()
    module_id = new_module(first, course["_id"], "Second").json()["_id"]
    kept = new_chapter(first, module_id, lesson("Kept")).json()["_id"]
    gone = new_chapter(first, module_id, lesson("Gone")).json()["_id"]
    call(first, "DELETE", f"{API}/chapters/{gone}")
    call(first, "DELETE", f"{API}/chapters/{course['secondChapter']}")
    tree = first.tree(HOST)
    first.stop()
    second = serve_in_thread(SandboxConfig(**config))
    try:
        assert second.tree(HOST) == tree
        assert read_module(second, module_id).json()["chapters"] == [kept]
        for chapter_id in (gone, course["secondChapter"]):
            r = call(second, "DELETE", f"{API}/chapters/{chapter_id}")
            assert r.status_code == 404 and r.json()["errorCode"] == "CHAPTER_NOT_FOUND"
        assert second.stats()["objects_by_host"][HOST] == {"courses": 1, "modules": 2, "chapters": 2,
                                                            "deleted_chapters": 2}
        assert new_chapter(second, module_id, lesson("After restart")).status_code == 200
        assert [c["title"] for c in second.tree(HOST)[0]["modules"][1]["chapters"]] == ["Kept", "After restart"]
    finally:
        second.stop()



# -- Delete Module: not documented by TagMango (5.12), off by default ---------------------------------------

UNKNOWN = "0123456789abcdef01234567"


def plain(r):
    return r.status_code, r.headers.get("content-type"), r.headers.get("allow"), r.content


def test_delete_module_is_off_by_default_and_answers_as_a_path_the_sandbox_does_not_have(sandbox):
    course = create(sandbox).json()
    module_id = course["modules"][0]
    before = sandbox.stats()
    unrouted = call(sandbox, "DELETE", f"{API}/no-such-endpoint/{module_id}")
    assert plain(unrouted) == (404, "text/plain; charset=utf-8", None, b"Not Found")
    for kw in ({}, {"token": "wrong"}, {"token": None, "host": None}):  # before auth: no route, no 401
        assert plain(call(sandbox, "DELETE", f"{API}/modules/{module_id}", **kw)) == plain(unrouted)
    sandbox.configure(error_rate=1.0)  # no faults either: nothing is routed there
    assert plain(call(sandbox, "DELETE", f"{API}/modules/{module_id}")) == plain(unrouted)
    sandbox.configure(error_rate=0.0)
    after = sandbox.stats()
    assert after["config"]["delete_module"] is False
    assert (after["requests"], after["writes"], after["by_route"]) == (before["requests"], before["writes"],
                                                                       before["by_route"])
    assert read_module(sandbox, module_id).json()["chapters"] == [course["firstChapter"], course["secondChapter"]]
    assert call(sandbox, "DELETE", f"{API}/courses/{course['_id']}").status_code == 405  # unchanged elsewhere


def test_delete_module_when_on_deletes_the_module_and_its_chapters(sandbox):
    course = create(sandbox).json()
    placeholder = course["modules"][0]
    week = new_module(sandbox, course["_id"], "Week 1").json()["_id"]
    again = new_module(sandbox, course["_id"], "Week 1").json()["_id"]  # a duplicate create to clean up
    doomed = [new_chapter(sandbox, again, lesson(t)).json()["_id"] for t in ("Quiz", "Quiz", "Recap")]
    kept = new_chapter(sandbox, week, lesson("Quiz")).json()["_id"]
    assert sandbox.stats()["duplicate_creates"][HOST][course["_id"]]["modules"] == [{"title": "Week 1", "count": 2}]
    assert sandbox.configure(delete_module=True)["delete_module"] is True

    r = call(sandbox, "DELETE", f"{API}/modules/{again}", host="other.example.com")
    assert r.status_code == 404 and r.json() == not_found("MODULE_NOT_FOUND")
    r = call(sandbox, "DELETE", f"{API}/modules/{UNKNOWN}")
    assert r.status_code == 404 and r.json() == not_found("MODULE_NOT_FOUND")
    r = call(sandbox, "DELETE", f"{API}/modules/{again}")
    assert r.status_code == 200 and r.content == b""

    assert read_course(sandbox, course["_id"])["modules"] == [placeholder, week]
    assert [m["_id"] for m in sandbox.tree(HOST)[0]["modules"]] == [placeholder, week]
    for method, path, body, code in (("DELETE", f"modules/{again}", None, "MODULE_NOT_FOUND"),
                                     ("PATCH", f"modules/{again}", {}, "MODULE_NOT_FOUND"),
                                     ("POST", f"modules/{again}/chapters", lesson("Late"), "MODULE_NOT_FOUND"),
                                     ("PATCH", f"chapters/{doomed[0]}", {"title": "x"}, "CHAPTER_NOT_FOUND"),
                                     ("DELETE", f"chapters/{doomed[2]}", None, "CHAPTER_NOT_FOUND")):
        r = call(sandbox, method, f"{API}/{path}", json=body)
        assert r.status_code == 404 and r.json() == not_found(code), (method, path)
    assert read_module(sandbox, week).json()["chapters"] == [kept]
    stats = sandbox.stats()
    assert stats["objects_by_host"][HOST] == {"courses": 1, "modules": 2, "chapters": 3, "deleted_chapters": 3}
    assert stats["duplicate_creates"] == {}  # the duplicate module and its duplicate "Quiz" are gone
    assert stats["writes_by_route"]["delete_module"] == 4 and stats["by_route"]["delete_module"] == 4
    assert stats["config"]["delete_module"] is True

    sandbox.configure(delete_module=False)  # and off again, live
    assert plain(call(sandbox, "DELETE", f"{API}/modules/{week}"))[:2] == (404, "text/plain; charset=utf-8")
    assert read_module(sandbox, week).status_code == 200
    assert httpx.post(sandbox.url + "/_sandbox/config", json={"delete_module": "yes"}).status_code == 400


def test_delete_module_can_delete_the_placeholder_module_of_create_course(sandbox_factory):
    sb = sandbox_factory(delete_module=True)
    course = create(sb).json()
    assert call(sb, "DELETE", f"{API}/modules/{course['modules'][0]}").status_code == 200
    after = read_course(sb, course["_id"])
    assert after["modules"] == [] and sb.tree(HOST)[0]["modules"] == []
    # As Delete Chapter does, the course's firstChapter/secondChapter are left as they were.
    assert (after["firstChapter"], after["secondChapter"]) == (course["firstChapter"], course["secondChapter"])
    assert sb.stats()["objects_by_host"][HOST] == {"courses": 1, "modules": 0, "chapters": 0, "deleted_chapters": 2}


@pytest.mark.parametrize("mode", ["result", "data"])
def test_delete_module_has_the_envelope_with_a_null_payload_like_delete_chapter(sandbox_factory, mode):
    sb = sandbox_factory(envelope=mode, delete_module=True)
    module_id = create(sb).json()[mode]["modules"][0]
    r = call(sb, "DELETE", f"{API}/modules/{module_id}")
    assert r.status_code == 200 and r.json() == {**r.json(), "success": True, mode: None}
    r = call(sb, "DELETE", f"{API}/modules/{module_id}")
    assert r.status_code == 404 and r.json() == not_found("MODULE_NOT_FOUND")


def test_delete_module_gets_the_faults_and_the_rate_limit_delete_chapter_gets(sandbox_factory):
    sb = sandbox_factory(delete_module=True, rate_limit=4)
    course = create(sb).json()                                                          # 1 in the window
    module_id = course["modules"][0]
    sb.configure(error_rate=1.0)
    assert call(sb, "DELETE", f"{API}/modules/{module_id}").status_code in (500, 502, 503)     # 2
    assert call(sb, "DELETE", f"{API}/chapters/{course['firstChapter']}").status_code in (500, 502, 503)  # 3
    sb.configure(error_rate=0.0, drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        call(sb, "DELETE", f"{API}/modules/{module_id}")                                # 4
    sb.configure(drop_rate=0.0)
    r = call(sb, "DELETE", f"{API}/modules/{module_id}")                                # 5: over the limit
    assert r.status_code == 429 and r.json()["statusCode"] == 429
    stats = sb.stats()
    assert stats["faults"] == {"error": 2, "drop": 1}
    assert stats["objects_by_host"][HOST] == {"courses": 1, "modules": 1, "chapters": 2, "deleted_chapters": 0}
    assert stats["writes_by_route"] == {"create_course": 1, "delete_module": 3, "delete_chapter": 1}


def test_state_dir_keeps_module_deletes_across_restarts(tmp_path):
    config = dict(tokens={TOKEN: None}, state_dir=tmp_path, delete_module=True)
    first = serve_in_thread(SandboxConfig(**config))
    course = create(first).json()
    gone = new_module(first, course["_id"], "Gone").json()["_id"]
    chapters = [new_chapter(first, gone, lesson(t)).json()["_id"] for t in ("A", "B")]
    kept = new_module(first, course["_id"], "Kept").json()["_id"]
    assert call(first, "DELETE", f"{API}/modules/{gone}").status_code == 200
    tree, counts = first.tree(HOST), first.stats()["objects_by_host"]
    first.stop()
    second = serve_in_thread(SandboxConfig(**config))
    try:
        assert second.tree(HOST) == tree and second.stats()["objects_by_host"] == counts
        assert read_course(second, course["_id"])["modules"] == [course["modules"][0], kept]
        r = call(second, "DELETE", f"{API}/modules/{gone}")
        assert r.status_code == 404 and r.json() == not_found("MODULE_NOT_FOUND")
        for chapter_id in chapters:
            r = call(second, "DELETE", f"{API}/chapters/{chapter_id}")
            assert r.status_code == 404 and r.json()["errorCode"] == "CHAPTER_NOT_FOUND"
        assert counts[HOST] == {"courses": 1, "modules": 2, "chapters": 2, "deleted_chapters": 2}
    finally:
        second.stop()


# -- faults for rate-limit work: counting after the latency, stalls --------------------------------------


def _arrival_delay(sb):
    """Seconds between sending one request and the moment the sandbox counted it in its window."""
    httpx.post(sb.url + "/_sandbox/reset")
    sent = time.time()
    call(sb, "GET", f"{API}/courses")
    (arrivals,) = httpx.get(sb.url + "/_sandbox/arrivals").json().values()
    return arrivals[0] - sent


def test_count_after_latency_counts_a_request_when_it_is_answered(sandbox_factory):
    sb = sandbox_factory(latency_s=(0.4, 0.4))
    assert _arrival_delay(sb) < 0.3  # default: counted when it arrives
    assert sb.configure(count_after_latency=True)["count_after_latency"] is True
    assert _arrival_delay(sb) >= 0.4


def _stalled_burst(sb, stall_s, count, every_s):
    """Start a stall, then send ``count`` GETs, one every ``every_s`` seconds, without waiting for answers.

    Returns [(status, answered_at)], ``answered_at`` in seconds since just before the stall began.
    """
    import asyncio

    async def run():
        headers = {"Authorization": f"Bearer {TOKEN}", "x-whitelabel-host": HOST}
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(base_url=sb.url, headers=headers, limits=limits, timeout=30) as client:
            began = time.monotonic()
            await client.post("/_sandbox/config", json={"stall_s": stall_s})
            start = time.monotonic()

            async def one(i):
                await asyncio.sleep(max(0.0, start + i * every_s - time.monotonic()))
                r = await client.get(f"{API}/courses")
                return r.status_code, time.monotonic() - began
            return await asyncio.gather(*(one(i) for i in range(count)))
    return asyncio.run(run())


def test_a_stall_releases_a_spread_stream_as_one_burst_counted_together(sandbox_factory):
    """100 requests spread over 5 s never exceed 21 in any 1 s, under a limit of 30 per 1 s. A 3 s stall
    with count_after_latency makes the ~60 held ones reach the window at once: 429s."""
    sb = sandbox_factory(rate_limit=30, rate_window_s=1.0, count_after_latency=True)
    answers = _stalled_burst(sb, 3.0, 100, 0.05)
    held = [at for (status, at) in answers[:50]]  # sent in the first 2.5 s: all inside the stall
    assert min(held) >= 2.95 and max(held) - min(held) < 0.5  # held until the stall ended, released together
    statuses = [status for status, _ in answers]
    assert statuses.count(429) >= 20 and statuses.count(200) + statuses.count(429) == 100
    stats = sb.stats()
    assert stats["faults"]["stalled"] >= 50 and stats["max_in_window"] == 30


def test_a_stall_with_counting_at_arrival_causes_no_429(sandbox_factory):
    sb = sandbox_factory(rate_limit=30, rate_window_s=1.0)
    answers = _stalled_burst(sb, 3.0, 100, 0.05)
    assert min(at for _, at in answers[:50]) >= 2.95
    assert [status for status, _ in answers] == [200] * 100


def test_stall_schedule_and_settings(sandbox):
    config = SandboxConfig()
    config.set_stall(0.5, 2.0, start=100.0)
    assert [config.stall_remaining(t) for t in (99.0, 100.0, 100.2, 100.6, 102.1, 105.9)] == \
        [0.0, 0.5, pytest.approx(0.3), 0.0, pytest.approx(0.4), 0.0]
    config.set_stall(1.0, start=10.0)  # once
    assert config.stall_remaining(10.5) == 0.5 and config.stall_remaining(12.5) == 0.0
    for bad in ({"stall_s": 2, "stall_every_s": 2}, {"stall_s": -1}, {"count_after_latency": "yes"}):
        assert httpx.post(sandbox.url + "/_sandbox/config", json=bad).status_code == 400
    settings = sandbox.configure(stall_s=5, stall_every_s=10)
    assert (settings["stall_s"], settings["stall_every_s"]) == (5.0, 10.0) and settings["stall_remaining_s"] > 4
    assert sandbox.configure(stall_s=0)["stall_remaining_s"] == 0  # ends the stall early
    assert call(sandbox, "GET", f"{API}/courses", timeout=2).status_code == 200


def test_periodic_stall_given_at_start_begins_one_period_later(sandbox_factory):
    sb = sandbox_factory(stall_s=0.5, stall_every_s=60.0)
    assert sb.stats()["config"]["stall_remaining_s"] == 0  # the first stall is 60 s away
    started = time.perf_counter()
    call(sb, "GET", f"{API}/courses")
    assert time.perf_counter() - started < 0.4


def test_cli_passes_the_new_fault_options(monkeypatch):
    from click.testing import CliRunner

    from importer import cli
    from importer.sandbox import server

    seen = []
    monkeypatch.setattr(server, "serve_forever", lambda config, *a, **kw: seen.append(config))
    result = CliRunner().invoke(cli.cli, ["sandbox", "--count-after-latency", "--stall-seconds", "2",
                                          "--stall-every", "30", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert (seen[0].count_after_latency, seen[0].stall_s, seen[0].stall_every_s) == (True, 2.0, 30.0)
    assert seen[0].delete_module is False
    assert CliRunner().invoke(cli.cli, ["sandbox", "--delete-module", "--port", "0"]).exit_code == 0
    assert seen[1].delete_module is True
    seen.pop()
    assert cli.cli.main(["sandbox", "--stall-seconds", "2"]) == 2  # a usage error: --stall-every is needed
    assert len(seen) == 1


# -- the package's import graph has no cycle -----------------------------------------------------------


def import_graph(root, package):
    """``{module: {module it imports}}`` for the modules of ``package`` (files under ``root``), read with ``ast``.

    Every import statement counts wherever it is: at the top, inside a function, under ``if TYPE_CHECKING``
    or in a ``try``. ``from P import name`` is an edge to the submodule ``P.name`` when there is one, else to
    ``P``. (Python loads a submodule's parent package first, whatever imports it; that implied edge is not
    an import the code makes and is not counted, as import linters do.)
    """
    import ast
    from pathlib import Path

    root = Path(root)
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join([package, *parts])] = path
    graph = {}
    for name, path in names.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, one level up per extra dot
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base
                           for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in names:  # import a.b.c: the deepest module of ours
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph):
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_sandbox_package_has_no_import_cycle_not_even_under_type_checking():
    from pathlib import Path

    import importer.sandbox

    graph = import_graph(Path(importer.sandbox.__file__).parent, "importer.sandbox")
    assert "importer.sandbox.core" in graph["importer.sandbox.app"]  # the graph is read, not empty
    assert "importer.sandbox.core" in graph["importer.sandbox.chapters"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_check_sees_imports_under_type_checking_and_inside_functions(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n")
    (pkg / "c.py").write_text("def f():\n    from . import d\n")
    (pkg / "d.py").write_text("import pkg.c\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg.d"} and graph["pkg.d"] == {"pkg.c"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    (pkg / "b.py").write_text("")
    assert find_cycle(import_graph(pkg, "pkg")) == ["pkg.c", "pkg.d", "pkg.c"]
    (pkg / "d.py").write_text("")
    assert find_cycle(import_graph(pkg, "pkg")) is None


# -- tokens off the command line: --token-file and TAGMANGO_SANDBOX_TOKENS ---------------------------------

ENV_TOKENS = "TAGMANGO_SANDBOX_TOKENS"


def poll(condition, what, timeout=60.0):
    """Wait until ``condition()`` gives something true, and return it."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


class SandboxProcess:
    """``python -m importer sandbox --port 0 ARGS`` in a child process, its URL read from its banner."""

    def __init__(self, tmp_path, *args, env=None):
        import os
        import subprocess
        import sys
        import threading

        self.stderr_path = tmp_path / "sandbox.stderr"
        self.proc = subprocess.Popen([sys.executable, "-m", "importer", "sandbox", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=open(self.stderr_path, "wb"),  # noqa: SIM115
                                     text=True, cwd=tmp_path, env={**os.environ, **(env or {})})
        self.stdout: list[str] = []
        self.closed = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.stdout.append(line)
        self.closed.set()

    def url(self):
        import re

        def banner():
            assert not self.closed.is_set(), f"the sandbox exited: {self.output()}"
            found = re.search(r"listening on (http://\S+)", "".join(self.stdout))
            return found and found.group(1)
        return poll(banner, "the sandbox's banner")

    def output(self):
        return "".join(self.stdout) + self.stderr_path.read_text()

    def stop(self):
        import subprocess

        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self.closed.wait(timeout=20)
        return self.output()


def status_with(url, token, host=HOST):
    headers = {"Authorization": f"Bearer {token}", "x-whitelabel-host": host}
    return httpx.get(f"{url}{API}/courses", headers=headers, timeout=10).status_code


def check_tokens_stay_out_of_sight(tmp_path, args, env, accepted, refused):
    """Start the CLI sandbox; ``accepted`` [(token, host)] get 200, ``refused`` ones 401, no token in its
    command line (/proc/PID/cmdline, what ps shows) nor in what it prints."""
    from pathlib import Path

    running = SandboxProcess(tmp_path, *args, env=env)
    try:
        url = running.url()
        cmdline = Path(f"/proc/{running.proc.pid}/cmdline").read_bytes()
        assert b"sandbox" in cmdline and b"--port" in cmdline  # it is the sandbox's own command line
        for token, host in accepted:
            assert token.encode() not in cmdline
            assert status_with(url, token, host) == 200
        for token, host in refused:
            assert status_with(url, token, host) == 401
    finally:
        printed = running.stop()
    assert "sandbox-token" not in printed and "Accepting " in printed
    for token, _ in accepted + refused:
        assert token not in printed


def test_tokens_from_the_environment_are_accepted_and_never_on_the_command_line(tmp_path):
    import secrets

    tied, free = f"env-tied-{secrets.token_hex(8)}", f"env-free-{secrets.token_hex(8)}"
    env = {ENV_TOKENS: f"  {tied}={HOST.upper()},\n{free}  "}  # commas and whitespace both separate
    check_tokens_stay_out_of_sight(tmp_path, [], env, accepted=[(tied, HOST), (free, "other.example.com")],
                                   refused=[(tied, "other.example.com"), ("sandbox-token", HOST)])


def test_a_0600_token_file_is_read_and_wins_over_the_environment(tmp_path):
    import secrets

    first, second, from_env = (f"file-{n}-{secrets.token_hex(8)}" for n in ("a", "b", "env"))
    path = tmp_path / "tokens"
    path.write_text(f"# sandbox tokens\n\n{first}={HOST}   # the academy\n  {second}\n#{from_env}\n")
    path.chmod(0o600)
    check_tokens_stay_out_of_sight(tmp_path, ["--token-file", str(path)], {ENV_TOKENS: from_env},
                                   accepted=[(first, HOST), (second, HOST)],
                                   refused=[(first, "other.example.com"), (from_env, HOST)])


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o620])
def test_a_token_file_open_to_group_or_others_is_refused_with_exit_3(tmp_path, mode):
    import subprocess
    import sys

    path = tmp_path / "tokens"
    path.write_text("file-token-that-must-not-show\n")
    path.chmod(mode)
    done = subprocess.run([sys.executable, "-m", "importer", "sandbox", "--port", "0", "--token-file", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 3
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: --token-file {path}: group or others may access it (mode {mode:04o}); run chmod 600 {path}"]
    assert "file-token-that-must-not-show" not in done.stderr


def test_token_sources_precedence_and_what_is_printed(tmp_path, monkeypatch, capsys):
    from importer import cli
    from importer.sandbox import server

    seen = []

    def fake_serve(config, *args, on_ready=None, **kwargs):
        seen.append(config)
        on_ready("http://127.0.0.1:1")

    monkeypatch.setattr(server, "serve_forever", fake_serve)
    path = tmp_path / "tokens"
    path.write_text("from-file=Academy.Example.com\n")
    path.chmod(0o600)

    def run(*args):
        assert cli.cli.main(["sandbox", "--port", "0", *args]) in (None, 0)
        out, err = capsys.readouterr()
        return seen[-1].tokens, out, err

    tokens, out, err = run()
    assert tokens == {"sandbox-token": None} and "Accepting the default token: sandbox-token" in out
    monkeypatch.setenv(ENV_TOKENS, "from-env,from-env-2=x.example.com")
    tokens, out, err = run()
    assert tokens == {"from-env": None, "from-env-2": "x.example.com"} and "from-env" not in out + err
    assert f"Accepting 2 token(s) from {ENV_TOKENS}" in out and "sandbox-token" not in out
    tokens, out, err = run("--token-file", str(path))
    assert tokens == {"from-file": "academy.example.com"} and "from-file" not in out + err
    assert err == f"note: ignoring {ENV_TOKENS}: --token-file wins\n"
    tokens, out, err = run("--token", "flag-a=Academy.Example.com", "--token", "flag-b", "--token-file", str(path))
    assert tokens == {"flag-a": "academy.example.com", "flag-b": None}  # --token as before
    assert err == f"note: ignoring --token-file: --token wins\nnote: ignoring {ENV_TOKENS}: --token wins\n"
    monkeypatch.setenv(ENV_TOKENS, " , ")  # blank: as if unset
    assert run()[0] == {"sandbox-token": None}
    for env, message in (("=academy.example.com", f"{ENV_TOKENS}, entry 1: no token before '='"),
                         ("ok, tok=", f"{ENV_TOKENS}, entry 2: no host after '='")):
        monkeypatch.setenv(ENV_TOKENS, env)
        assert cli.cli.main(["sandbox", "--port", "0"]) == 3
        assert capsys.readouterr().err == f"error: {message}\n"
    for text, message in (("# only a comment\n", "no tokens in it"), ("a b\n", "line 1: one TOKEN[=HOST] per line")):
        path.write_text(text)
        assert cli.cli.main(["sandbox", "--port", "0", "--token-file", str(path)]) == 3
        assert capsys.readouterr().err == f"error: --token-file {path}{',' if 'line' in message else ':'} {message}\n"
    assert cli.cli.main(["sandbox", "--port", "0", "--token-file", str(tmp_path / "missing")]) == 3
    assert capsys.readouterr().err == f"error: --token-file {tmp_path / 'missing'}: no such file\n"


def test_429s_on_demand_as_if_another_client_used_the_key(sandbox):
    sandbox.configure(refuse_429={"after": 1, "count": 2})
    codes = [call(sandbox, "GET", "/api/v1/external/courses").status_code for _ in range(4)]
    assert codes == [200, 429, 429, 200]
    assert sandbox.stats()["rate_limited"] == 2 and sandbox.stats()["config"]["refuse_429"] == {"after": 0, "count": 0}


def test_a_sandbox_holding_a_hung_request_stops_without_waiting_for_it():
    """A hung request (a fault: 40 s before its 504) must not hold the sandbox's stop: it is cut short, and the
    server thread has ended when ``stop`` returns (it waited 10 s and left the thread running before)."""
    running = serve_in_thread(SandboxConfig(tokens={TOKEN: None}, seed=1, hang_rate=1.0, hang_s=40.0))
    try:
        with pytest.raises(httpx.TimeoutException):
            call(running, "GET", "/api/v1/external/courses", timeout=0.5)
        assert running.stats()["faults"]["hang"] == 1  # still held by the server
    finally:
        running.stop()
    assert not running.thread.is_alive()


def test_the_sandbox_answers_without_waiting_for_a_delayed_ack():
    """The sandbox's connections have TCP_NODELAY (asyncio sets it only when the listening socket says TCP):
    without it, each answer on a kept-alive connection waited ~40 ms for the client's delayed ACK."""
    import asyncio
    import socket

    from importer.sandbox.server import bind_socket

    async def accepted_nodelay() -> int:
        seen: asyncio.Future = asyncio.get_running_loop().create_future()

        class Note(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Note, sock=bind_socket())
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(accepted_nodelay()) == 1
