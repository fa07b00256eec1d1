"""The TagMango API client: one pooled httpx transport, every failure mapped to tasks.errors.

The client speaks the API as documented (docs.tagmango.com), not as our sandbox happens
to behave: success bodies may be bare entities or wrapped in ``result``/``data``; 429
bodies may carry ``statusCode`` or ``code``; ``Retry-After`` is honoured when present
but never required.
"""

from __future__ import annotations

import email.utils
import functools
import ssl
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import httpx

from tasks import errors
from tasks.paths import CHAPTERS_PATH, COURSES_PATH, MODULES_PATH

DEFAULT_API_URL = "https://api-prod-new.tagmango.com"
#: Seconds. Connect fails fast; read allows for slow creates; pool waits for a free connection.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=10.0, pool=10.0)
#: Delete Chapter's documented success body is "Empty": no body, or that word, is success.
_EMPTY_BODIES = {"", "empty", '"empty"', "null"}

_TRANSIENT_STATUSES = {500, 502, 503, 504}


@dataclass(frozen=True)
class Page:
    total: int
    items: list[dict]


class TagMangoClient:
    """Calls the TagMango external API for one whitelabel host with one API key.

    Thread-safe (httpx's transport is); meant to be created once per worker process and shared.
    The token is kept only in the headers every request is built with: never in repr(),
    logs or exception text.

    Requests go straight to an ``httpx.HTTPTransport`` (its connection pool), not through an ``httpx.Client``: this
    API needs nothing the client layer adds (cookies, redirects, auth flows, event hooks), and that layer cost about
    a fifth of the CPU of each request, which a worker serving dozens of creators spends hundreds of times a second.
    What the client did that this API needs is done here: the base URL, the default headers, the timeout of each
    call (``extensions``), the proxy the environment names (``environment_proxy``), the response read whole.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        host: str,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        timezone_offset: int | None = None,
        max_connections: int = 32,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise ValueError("an API token is required")
        if not host:
            raise ValueError("an x-whitelabel-host is required")
        headers = {
            "Authorization": f"Bearer {token}",
            "x-whitelabel-host": host,
            "Accept": "application/json",
            "User-Agent": "tagmango-importer/0.1",
        }
        if timezone_offset is not None:
            headers["x-timezone-offset"] = str(timezone_offset)
        self.base_url = base_url.rstrip("/")
        self.host = host
        self._headers = httpx.Headers(headers)
        self._timeout = timeout.as_dict()
        self._transport = transport or httpx.HTTPTransport(
            verify=shared_ssl_context(),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            proxy=environment_proxy(self.base_url),
        )

    def __repr__(self) -> str:
        return f"TagMangoClient(base_url={self.base_url!r}, host={self.host!r}, token=***)"

    def close(self) -> None:
        self._transport.close()

    # -- endpoints ---------------------------------------------------------------------

    def create_course(self, body: dict) -> dict:
        """POST /api/v1/external/courses → the created course (with firstChapter/secondChapter)."""
        return self._entity(self._call("POST", COURSES_PATH, json=body))

    def update_course(self, course_id: str, body: dict) -> dict:
        """PATCH /api/v1/external/courses/{id}: partial update; ``{}`` reads the course back."""
        return self._entity(self._call("PATCH", f"{COURSES_PATH}/{course_id}", json=body))

    def get_courses(self, *, page: int = 1, limit: int = 50, mangoes: list[str] | None = None,
                    timeout: httpx.Timeout | None = None) -> Page:
        """GET /api/v1/external/courses → one page of ``{total, data: [...]}`` (``timeout``: this call's own)."""
        params: dict[str, Any] = {"page": page, "limit": limit}
        if mangoes:
            params["mangoes"] = ",".join(mangoes)
        body = self._call("GET", COURSES_PATH, params=params, **({"timeout": timeout} if timeout else {}))
        inner = _unwrap(body)
        if isinstance(inner, list):
            return Page(total=len(inner), items=inner)
        if isinstance(inner, dict) and isinstance(inner.get("data"), list):
            return Page(total=int(inner.get("total") or len(inner["data"])), items=inner["data"])
        raise errors.ServerError("Get Courses returned a body without a course list", status=200)

    def update_chapter(self, chapter_id: str, body: dict) -> dict:
        """PATCH /api/v1/external/chapters/{id}: partial update of one chapter."""
        return self._entity(self._call("PATCH", f"{CHAPTERS_PATH}/{chapter_id}", json=body))

    def create_module(self, course_id: str, body: dict) -> dict:
        """POST /api/v1/external/courses/{id}/modules → the module. Not idempotent, like Create Course:
        after a failure with ``maybe_committed``, read the course's ``modules`` before creating again."""
        return self._entity(self._call("POST", f"{COURSES_PATH}/{course_id}/modules", json=body))

    def update_module(self, module_id: str, body: dict) -> dict:
        """PATCH /api/v1/external/modules/{id}: partial update; ``{}`` reads the module (its ``chapters``)."""
        return self._entity(self._call("PATCH", f"{MODULES_PATH}/{module_id}", json=body))

    def create_chapter(self, module_id: str, body: dict) -> dict:
        """POST /api/v1/external/modules/{id}/chapters → the chapter (title and description required).
        Not idempotent: after a ``maybe_committed`` failure, read the module's ``chapters`` first."""
        return self._entity(self._call("POST", f"{MODULES_PATH}/{module_id}/chapters", json=body))

    def delete_chapter(self, chapter_id: str) -> None:
        """DELETE /api/v1/external/chapters/{id}. Success is any 2xx whose body is empty, "Empty" or
        JSON (bare or enveloped); an unknown or already deleted chapter raises PermanentApiError
        (404 ``CHAPTER_NOT_FOUND``), which a retry after a ``maybe_committed`` failure may see."""
        _deleted(self._send("DELETE", f"{CHAPTERS_PATH}/{chapter_id}"))

    def delete_module(self, module_id: str) -> bool:
        """DELETE /api/v1/external/modules/{id}, which TagMango does not document (reference 5.12). True: deleted
        (a success body as delete_chapter's). False: this TagMango has no Delete Module: a 405, or a 404 that is
        not its ``MODULE_NOT_FOUND`` error (a path it does not route). An unknown or already deleted module raises
        PermanentApiError (404 ``MODULE_NOT_FOUND``), which a retry after a ``maybe_committed`` failure may see."""
        response = self._send("DELETE", f"{MODULES_PATH}/{module_id}")
        if response.status_code == 405 or (response.status_code == 404 and _error_code(response) != "MODULE_NOT_FOUND"):
            return False
        _deleted(response)
        return True

    # -- plumbing ----------------------------------------------------------------------

    def _entity(self, body: Any) -> dict:
        inner = _unwrap(body)
        if not isinstance(inner, dict):
            raise errors.ServerError("the API answered 2xx with a body that is not an object", status=200,
                                     maybe_committed=True)
        return inner

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return parse_response(self._send(method, path, **kw))

    def _send(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
              timeout: httpx.Timeout | None = None) -> httpx.Response:
        """One request, its response read whole (the connection goes back to the pool)."""
        try:
            request = httpx.Request(method, self.base_url + path, params=params, json=json, headers=self._headers,
                                    extensions={"timeout": timeout.as_dict() if timeout else self._timeout})
            response = self._transport.handle_request(request)
            response.request = request
            try:
                response.read()
            finally:
                response.close()
            return response
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # every httpx failure is translated here
            raise map_transport_error(exc) from None


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url``, as ``httpx.Client`` would take it (``trust_env``): the scheme's
    ``*_PROXY`` variable or ``ALL_PROXY``, none when ``NO_PROXY`` covers the host (Python's own reading of them)."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    return proxy if not proxy or "://" in proxy else f"http://{proxy}"  # "host:port" means an HTTP proxy


def warm_up() -> None:
    """Load now what a process's first request would: httpx imports its connection layer (httpcore, about 0.1 s of
    CPU) when the first transport is built, and the TLS context. A worker pays it at start-up, not while its first
    rows wait (and not 16 threads at once, each building a creator's client)."""
    import httpcore  # noqa: F401

    shared_ssl_context()


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every client of this process (what httpx would build for each: certifi's bundle, or
    SSL_CERT_FILE / SSL_CERT_DIR). Loading the bundle costs milliseconds and about a megabyte per client; a worker
    serving dozens of creators has a client per creator (``keys16``: 4.1 -> 3.7 ms of worker CPU per request)."""
    return httpx.create_ssl_context()


def parse_response(response: httpx.Response) -> Any:
    """Return the JSON body of a 2xx response, or raise the matching ApiError."""
    status = response.status_code
    body = _json_or_none(response)
    if 200 <= status < 300:
        if body is None and response.content:
            raise errors.ServerError(f"HTTP {status} with a body that is not JSON", status=status,
                                     maybe_committed=True)
        return body if body is not None else {}
    code = body.get("errorCode") if isinstance(body, dict) else None
    message = _message(body, response)
    if status == 429:
        raise errors.RateLimited(message, retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if status in _TRANSIENT_STATUSES:
        raise errors.ServerError(message, status=status, error_code=code, maybe_committed=True)
    if 400 <= status < 500:
        raise errors.PermanentApiError(message, status=status, error_code=code)
    # 1xx/3xx/other 5xx: nothing documented; treat as a server fault that may have acted.
    raise errors.ServerError(message, status=status, error_code=code, maybe_committed=True)


def _deleted(response: httpx.Response) -> None:
    """A delete's answer: any 2xx whose body is empty, "Empty" or JSON is success; anything else raises."""
    if not (200 <= response.status_code < 300 and response.text.strip().lower() in _EMPTY_BODIES):
        parse_response(response)


def _error_code(response: httpx.Response) -> str | None:
    body = _json_or_none(response)
    return body.get("errorCode") if isinstance(body, dict) else None


def map_transport_error(exc: httpx.HTTPError | httpx.InvalidURL) -> errors.ApiError:
    """Translate an httpx exception (no HTTP answer) into our tree. The text names no header."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return errors.PermanentApiError(f"bad API URL ({text})")
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return errors.ApiTimeout(text, maybe_committed=False)
    if isinstance(exc, httpx.TimeoutException):  # read/write timeout: the request may have arrived
        return errors.ApiTimeout(text, maybe_committed=True)
    if isinstance(exc, httpx.ConnectError):
        return errors.ConnectionFailed(text, maybe_committed=False)
    if isinstance(exc, httpx.TransportError):  # read/write errors, dropped connections, protocol errors
        return errors.ConnectionFailed(text, maybe_committed=True)
    return errors.TransportError(text, maybe_committed=True)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _unwrap(body: Any) -> Any:
    """Strip a ``{success, result}`` or ``{success, data}`` envelope; leave bare entities alone."""
    if isinstance(body, dict) and "success" in body:
        for key in ("result", "data"):
            if key in body and isinstance(body[key], dict | list):
                return body[key]
    return body


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message(body: Any, response: httpx.Response) -> str:
    if isinstance(body, dict):
        for key in ("message", "statusMessage", "result"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
    reason = response.reason_phrase or ""
    return f"HTTP {response.status_code} {reason}".strip()
