"""The API client: documented shapes in, our exception tree out; never a raw httpx error or the token."""

from __future__ import annotations

import httpx
import pytest

from tasks import errors
from tasks.client import TagMangoClient, parse_retry_after
from tests.helpers import HOST, TOKEN

DOC_CREATE = {"title": "My Course", "description": "<p>Course description</p>",
              "mangoes": ["66c4964c11e7fef26751f3a7"], "coverImage": "https://example.com/cover.jpg"}


@pytest.fixture
def client(sandbox):
    c = TagMangoClient(sandbox.url, TOKEN, HOST, timeout=httpx.Timeout(5, read=1.0))
    yield c
    c.close()


# -- against the real sandbox over HTTP ------------------------------------------------------


def test_create_read_back_and_patch_against_the_sandbox(client):
    course = client.create_course(DOC_CREATE)
    again = client.update_course(course["_id"], {})
    assert again["secondChapter"] == course["secondChapter"]
    chapter = client.update_chapter(course["firstChapter"], {"title": "Intro"})
    assert chapter["title"] == "Intro"
    page = client.get_courses(mangoes=DOC_CREATE["mangoes"])
    assert page.total == 1 and page.items[0]["_id"] == course["_id"]


@pytest.mark.parametrize("envelope", ["bare", "result", "data"])
def test_every_documented_envelope_is_unwrapped(sandbox_factory, envelope):
    sb = sandbox_factory(envelope=envelope)
    c = TagMangoClient(sb.url, TOKEN, HOST)
    course = c.create_course(DOC_CREATE)
    assert course["title"] == "My Course" and "firstChapter" in course
    assert c.get_courses().items[0]["_id"] == course["_id"]
    assert c.update_course(course["_id"], {})["firstChapter"] == course["firstChapter"]
    c.close()


def test_bad_token_is_permanent_401(sandbox):
    c = TagMangoClient(sandbox.url, "nope", HOST)
    with pytest.raises(errors.PermanentApiError) as info:
        c.create_course(DOC_CREATE)
    assert info.value.status == 401 and info.value.message == "Invalid token"


def test_error_code_is_carried(client):
    course = client.create_course(DOC_CREATE)
    with pytest.raises(errors.PermanentApiError) as info:
        client.update_chapter(course["firstChapter"], {"content": "https://x.test/v.mp4", "contentType": "video"})
    assert (info.value.status, info.value.error_code) == (400, "CHAPTER_USER_ASSET_NOT_FOUND")
    assert not info.value.maybe_committed


def test_rate_limited_against_the_sandbox(sandbox_factory):
    sb = sandbox_factory(rate_limit=1)
    c = TagMangoClient(sb.url, TOKEN, HOST)
    c.get_courses()
    with pytest.raises(errors.RateLimited) as info:
        c.get_courses()
    assert info.value.status == 429 and info.value.retry_after is None and info.value.retryable


def test_sandbox_faults_map_to_transient_errors(sandbox_factory):
    sb = sandbox_factory(error_rate=1.0)
    c = TagMangoClient(sb.url, TOKEN, HOST, timeout=httpx.Timeout(5, read=0.5))
    with pytest.raises(errors.ServerError) as info:
        c.create_course(DOC_CREATE)
    assert info.value.maybe_committed
    sb.configure(error_rate=0, drop_rate=1.0)
    with pytest.raises(errors.ConnectionFailed) as info:
        c.create_course(DOC_CREATE)
    assert info.value.maybe_committed
    sb.configure(drop_rate=0, hang_rate=1.0, hang_s=2.0)
    with pytest.raises(errors.ApiTimeout) as info:
        c.create_course(DOC_CREATE)
    assert info.value.maybe_committed


def test_connection_refused_is_transient_and_not_committed():
    c = TagMangoClient("http://127.0.0.1:9", TOKEN, HOST)
    with pytest.raises(errors.ConnectionFailed) as info:
        c.get_courses()
    assert not info.value.maybe_committed


def test_token_never_in_repr_or_error_text(sandbox):
    c = TagMangoClient(sandbox.url, TOKEN, HOST)
    assert TOKEN not in repr(c)
    for exc in (errors.ApiError("x"),):
        assert TOKEN not in str(exc)
    with pytest.raises(errors.ApiError) as info:
        TagMangoClient("http://127.0.0.1:9", TOKEN, HOST).get_courses()
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)


# -- modules and chapters (course trees) ---------------------------------------------------


@pytest.mark.parametrize("envelope", ["bare", "result", "data"])
def test_tree_methods_in_every_documented_envelope(sandbox_factory, envelope):
    sb = sandbox_factory(envelope=envelope)
    c = TagMangoClient(sb.url, TOKEN, HOST)
    course = c.create_course(DOC_CREATE)
    placeholder = c.update_module(course["modules"][0], {})
    assert placeholder["chapters"] == [course["firstChapter"], course["secondChapter"]]
    module = c.create_module(course["_id"], {"title": "Week 2"})
    assert module["title"] == "Week 2" and module["course"] == course["_id"] and module["chapters"] == []
    assert c.update_course(course["_id"], {})["modules"] == [placeholder["_id"], module["_id"]]
    assert c.update_module(module["_id"], {"title": "Week two"})["title"] == "Week two"
    chapter = c.create_chapter(module["_id"], {"title": "Lesson", "description": "First lesson", "isFree": True})
    assert chapter["module"] == module["_id"] and chapter["isFree"] is True
    assert c.update_module(module["_id"], {})["chapters"] == [chapter["_id"]]
    assert c.delete_chapter(chapter["_id"]) is None
    assert c.update_module(module["_id"], {})["chapters"] == []
    with pytest.raises(errors.PermanentApiError) as info:
        c.delete_chapter(chapter["_id"])
    assert (info.value.status, info.value.error_code) == (404, "CHAPTER_NOT_FOUND")
    assert not info.value.maybe_committed and not info.value.retryable
    c.close()


def test_tree_errors_carry_their_documented_codes(client):
    course = client.create_course(DOC_CREATE)
    unknown = "0123456789abcdef01234567"
    for call, code in ((lambda: client.create_module(unknown, {"title": "x"}), "COURSE_NOT_FOUND"),
                       (lambda: client.update_module(unknown, {}), "MODULE_NOT_FOUND"),
                       (lambda: client.create_chapter(unknown, {"title": "x", "description": "y"}),
                        "MODULE_NOT_FOUND")):
        with pytest.raises(errors.PermanentApiError) as info:
            call()
        assert (info.value.status, info.value.error_code) == (404, code)
    with pytest.raises(errors.PermanentApiError) as info:
        client.create_chapter(course["modules"][0], {"title": "No description"})
    assert (info.value.status, info.value.error_code, info.value.message) == (400, None, "Invalid request")
    with pytest.raises(errors.PermanentApiError) as info:
        client.create_chapter(course["modules"][0], {"title": "t", "description": "d",
                                                     "content": "https://x.test/v.mp4", "contentType": "video"})
    assert info.value.error_code == "CHAPTER_USER_ASSET_NOT_FOUND"


def test_committed_but_failed_module_create_is_a_maybe_committed_error(sandbox_factory):
    sb = sandbox_factory(hang_s=0.3)
    c = TagMangoClient(sb.url, TOKEN, HOST, timeout=httpx.Timeout(5, read=2.0))
    course = c.create_course(DOC_CREATE)
    sb.configure(commit_fail_rate=1.0)
    with pytest.raises(errors.ServerError) as info:
        c.create_module(course["_id"], {"title": "Lost answer"})
    assert info.value.maybe_committed and info.value.status in (502, 504)
    with pytest.raises(errors.ServerError):
        c.create_chapter(course["modules"][0], {"title": "Lost answer", "description": "d"})
    sb.configure(commit_fail_rate=0.0)
    modules = c.update_course(course["_id"], {})["modules"]
    assert len(modules) == 2 and c.update_module(modules[1], {})["title"] == "Lost answer"
    assert len(c.update_module(modules[0], {})["chapters"]) == 3
    c.close()


def test_tree_methods_send_the_documented_requests():
    seen = []

    def record(request):
        seen.append((request.method, request.url.path, request.content))
        if request.method == "DELETE":
            return httpx.Response(200)
        return httpx.Response(200, json={"_id": "x"})
    c = TagMangoClient("http://api.test", TOKEN, HOST, transport=httpx.MockTransport(record))
    c.create_module("C1", {"title": "T"})
    c.update_module("M1", {})
    c.create_chapter("M1", {"title": "T", "description": "D"})
    c.delete_chapter("H1")
    assert seen == [("POST", "/api/v1/external/courses/C1/modules", b'{"title":"T"}'),
                    ("PATCH", "/api/v1/external/modules/M1", b"{}"),
                    ("POST", "/api/v1/external/modules/M1/chapters", b'{"title":"T","description":"D"}'),
                    ("DELETE", "/api/v1/external/chapters/H1", b"")]


@pytest.mark.parametrize("answer", [
    httpx.Response(200), httpx.Response(204), httpx.Response(200, content=b"Empty"),
    httpx.Response(200, content=b"empty\n"), httpx.Response(200, json="Empty"), httpx.Response(200, json=None),
    httpx.Response(200, json={"message": "OK", "success": True, "result": None}),
    httpx.Response(200, json={"message": "Chapter deleted", "success": True}),
])
def test_delete_chapter_accepts_every_empty_or_json_success(answer):
    assert _client_answering(lambda request: answer).delete_chapter("H1") is None


def test_delete_chapter_failures_map_like_every_call():
    c = _client_answering(lambda r: httpx.Response(200, content=b"<html>gateway</html>"))
    with pytest.raises(errors.ServerError) as info:
        c.delete_chapter("H1")
    assert info.value.maybe_committed
    c = _client_answering(lambda r: httpx.Response(503, json={"message": "down", "success": False}))
    with pytest.raises(errors.ServerError) as info:
        c.delete_chapter("H1")
    assert info.value.maybe_committed and info.value.status == 503

    def boom(request):
        raise httpx.ReadTimeout("t")
    with pytest.raises(errors.ApiTimeout):
        _client_answering(boom).delete_chapter("H1")


MODULE_NOT_FOUND = {"code": 404, "type": "Not Found", "statusMessage": "NOT_FOUND", "errorCode": "MODULE_NOT_FOUND",
                    "message": "The module does not exist or does not belong to this creator.", "success": False}


@pytest.mark.parametrize(("answer", "deleted"), [
    (httpx.Response(200), True), (httpx.Response(200, content=b"Empty"), True),
    (httpx.Response(200, json={"message": "OK", "success": True, "result": None}), True),
    # no such endpoint: a path this TagMango does not route, however it words it, or a method it does not allow
    (httpx.Response(404, text="Not Found"), False), (httpx.Response(405, text="Method Not Allowed"), False),
    (httpx.Response(404, json={"statusCode": 404, "message": "Cannot DELETE /api/v1/external/modules/M1",
                               "error": "Not Found"}), False),
    (httpx.Response(404, json={"code": 404, "type": "Not Found", "message": "Not Found", "success": False}), False),
])
def test_delete_module_says_whether_tagmango_has_the_endpoint(answer, deleted):
    seen = []

    def record(request):
        seen.append((request.method, request.url.path))
        return answer
    assert _client_answering(record).delete_module("M1") is deleted
    assert seen == [("DELETE", "/api/v1/external/modules/M1")]


def test_delete_module_failures_map_like_every_call():
    with pytest.raises(errors.PermanentApiError) as info:  # gone already: the operation counts it as deleted
        _client_answering(lambda r: httpx.Response(404, json=MODULE_NOT_FOUND)).delete_module("M1")
    assert (info.value.status, info.value.error_code) == (404, "MODULE_NOT_FOUND")
    with pytest.raises(errors.PermanentApiError) as info:
        _client_answering(lambda r: httpx.Response(401, json={"code": 401, "message": "Invalid token"})).delete_module(
            "M1")
    assert info.value.status == 401
    with pytest.raises(errors.ServerError) as info:
        _client_answering(lambda r: httpx.Response(502, json={"message": "down"})).delete_module("M1")
    assert info.value.maybe_committed
    with pytest.raises(errors.RateLimited):
        _client_answering(lambda r: httpx.Response(429, json={"statusCode": 429, "message": "slow"})).delete_module(
            "M1")


def test_delete_module_against_the_sandbox_off_and_on(sandbox, client):
    module_id = client.update_course(client.create_course(DOC_CREATE)["_id"], {})["modules"][0]
    module_id = module_id if isinstance(module_id, str) else module_id["_id"]
    assert client.delete_module(module_id) is False  # off by default: a path the sandbox does not have
    sandbox.configure(delete_module=True)
    assert client.delete_module(module_id) is True
    with pytest.raises(errors.PermanentApiError) as info:
        client.delete_module(module_id)
    assert info.value.error_code == "MODULE_NOT_FOUND"


def test_the_client_module_does_not_import_celery():
    import ast
    import pathlib

    import tasks.client
    tree = ast.parse(pathlib.Path(tasks.client.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] == "celery" or name == "tasks.celery_app" for name in imported)


# -- the mapping table (pure logic: MockTransport) -------------------------------------------


def _client_answering(handler):
    return TagMangoClient("http://api.test", TOKEN, HOST, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(("status", "cls", "committed"), [
    (400, errors.PermanentApiError, False), (401, errors.PermanentApiError, False),
    (403, errors.PermanentApiError, False), (404, errors.PermanentApiError, False),
    (409, errors.PermanentApiError, False), (422, errors.PermanentApiError, False),
    (429, errors.RateLimited, False), (500, errors.ServerError, True), (502, errors.ServerError, True),
    (503, errors.ServerError, True), (504, errors.ServerError, True), (501, errors.ServerError, True),
    (302, errors.ServerError, True),
])
def test_every_status_maps_to_its_class(status, cls, committed):
    c = _client_answering(lambda request: httpx.Response(status, json={"message": "m", "success": False}))
    with pytest.raises(cls) as info:
        c.create_course(DOC_CREATE)
    assert type(info.value) is cls and info.value.maybe_committed is committed
    assert info.value.retryable is (cls is not errors.PermanentApiError)


@pytest.mark.parametrize(("exc", "cls", "committed"), [
    (httpx.ConnectTimeout("t"), errors.ApiTimeout, False),
    (httpx.PoolTimeout("t"), errors.ApiTimeout, False),
    (httpx.ReadTimeout("t"), errors.ApiTimeout, True),
    (httpx.WriteTimeout("t"), errors.ApiTimeout, True),
    (httpx.ConnectError("c"), errors.ConnectionFailed, False),
    (httpx.ReadError("r"), errors.ConnectionFailed, True),
    (httpx.WriteError("w"), errors.ConnectionFailed, True),
    (httpx.RemoteProtocolError("p"), errors.ConnectionFailed, True),
    (httpx.LocalProtocolError("p"), errors.ConnectionFailed, True),
    (httpx.ProxyError("p"), errors.ConnectionFailed, True),
    (httpx.UnsupportedProtocol("u"), errors.PermanentApiError, False),
    (httpx.DecodingError("d"), errors.TransportError, True),
    (httpx.TooManyRedirects("r"), errors.TransportError, True),
])
def test_every_transport_failure_maps_to_its_class(exc, cls, committed):
    def boom(request):
        raise exc
    with pytest.raises(cls) as info:
        _client_answering(boom).get_courses()
    assert type(info.value) is cls and info.value.maybe_committed is committed
    assert not isinstance(info.value, httpx.HTTPError)


def test_every_httpx_exception_class_is_mapped():
    """A new httpx exception class must be looked at, not fall through unnoticed."""
    from tasks.client import map_transport_error
    leaves = [c for c in vars(httpx).values()
              if isinstance(c, type) and issubclass(c, httpx.HTTPError) and not c.__subclasses__()]
    for cls in leaves:
        try:
            instance = cls("x")
        except TypeError:
            instance = cls("x", request=httpx.Request("GET", "http://x"), response=httpx.Response(500))
        assert isinstance(map_transport_error(instance), errors.ApiError), cls


def test_429_with_code_field_and_retry_after_header():
    c = _client_answering(lambda r: httpx.Response(429, headers={"Retry-After": "7"},
                                                   json={"code": 429, "message": "slow down"}))
    with pytest.raises(errors.RateLimited) as info:
        c.get_courses()
    assert info.value.retry_after == 7.0 and info.value.message == "slow down"


def test_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0  # a past date means now


def test_2xx_with_a_non_json_body_is_transient_and_maybe_committed():
    c = _client_answering(lambda r: httpx.Response(200, content=b"<html>gateway</html>"))
    with pytest.raises(errors.ServerError) as info:
        c.create_course(DOC_CREATE)
    assert info.value.maybe_committed


def test_error_bodies_in_each_documented_shape_give_a_message():
    shapes = [{"code": 400, "type": "Bad Request", "statusMessage": "BAD_REQUEST", "errorCode": "E",
               "message": "why", "result": "why", "success": False},
              {"message": "why", "success": False, "statusMessage": "NOT_FOUND", "code": 400}]
    for body in shapes:
        c = _client_answering(lambda r, body=body: httpx.Response(400, json=body))
        with pytest.raises(errors.PermanentApiError) as info:
            c.create_course(DOC_CREATE)
        assert info.value.message == "why"
    c = _client_answering(lambda r: httpx.Response(400, content=b"plain text"))
    with pytest.raises(errors.PermanentApiError) as info:
        c.create_course(DOC_CREATE)
    assert "400" in info.value.message


def test_headers_sent_on_every_call():
    seen = []

    def record(request):
        seen.append(request.headers)
        return httpx.Response(200, json={"total": 0, "data": []})
    c = TagMangoClient("http://api.test", TOKEN, HOST, timezone_offset=330, transport=httpx.MockTransport(record))
    c.get_courses()
    assert seen[0]["authorization"] == f"Bearer {TOKEN}"
    assert seen[0]["x-whitelabel-host"] == HOST and seen[0]["x-timezone-offset"] == "330"


def test_every_client_of_a_process_shares_one_verifying_tls_context():
    """A worker serving many creators has a client per creator; each loading certifi's bundle cost CPU and memory
    (tasks.client.shared_ssl_context). Shared, it still verifies certificates and host names."""
    import ssl

    clients = [TagMangoClient("https://api.example.com", f"token-{i}", f"h{i}.example.com") for i in range(3)]
    try:
        contexts = {id(c._transport._pool._ssl_context) for c in clients}
        ctx = clients[0]._transport._pool._ssl_context
        assert len(contexts) == 1
        assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
        assert ctx.cert_store_stats()["x509_ca"] > 0  # a CA bundle is loaded
    finally:
        for c in clients:
            c.close()


# -- the proxy the environment names ------------------------------------------------------------


@pytest.fixture
def proxy_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_environment_proxy_reads_the_variables_as_httpx_client_did(proxy_env):
    from tasks.client import environment_proxy
    assert environment_proxy("https://api-prod-new.tagmango.com") is None
    proxy_env.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert environment_proxy("https://api-prod-new.tagmango.com") == "http://proxy.corp:3128"
    assert environment_proxy("http://127.0.0.1:8000") is None  # HTTP_PROXY is not set
    proxy_env.setenv("ALL_PROXY", "proxy.corp:8080")  # host:port alone means an HTTP proxy
    assert environment_proxy("http://127.0.0.1:8000") == "http://proxy.corp:8080"
    proxy_env.setenv("NO_PROXY", "tagmango.com,127.0.0.1")
    assert environment_proxy("https://api-prod-new.tagmango.com") is None
    assert environment_proxy("http://127.0.0.1:8000") is None
    assert environment_proxy("https://api.other.example") == "http://proxy.corp:3128"


def test_requests_go_through_the_environment_proxy_over_http(proxy_env):
    """A real forward proxy (a recording HTTP server): the request reaches it in absolute form with its headers, and
    the answer comes back as the API's; NO_PROXY sends the request straight to the host instead."""
    import json as jsonlib
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen = []

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers["Authorization"], self.headers["x-whitelabel-host"], body))
            answer = jsonlib.dumps({"_id": "c1", "title": "via proxy"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_port}")
        c = TagMangoClient("http://api.tagmango.invalid", TOKEN, HOST, timeout=httpx.Timeout(5))
        assert c.create_course({"title": "T"}) == {"_id": "c1", "title": "via proxy"}
        c.close()
        assert seen == [("http://api.tagmango.invalid/api/v1/external/courses", f"Bearer {TOKEN}", HOST,
                         b'{"title":"T"}')]
        proxy_env.setenv("NO_PROXY", "api.tagmango.invalid")
        c = TagMangoClient("http://api.tagmango.invalid", TOKEN, HOST, timeout=httpx.Timeout(5))
        with pytest.raises(errors.ConnectionFailed):  # no such host: it did not go to the proxy
            c.create_course({"title": "T"})
        c.close()
        assert len(seen) == 1
    finally:
        server.shutdown()
        server.server_close()
