"""The sandbox's HTTP surface: TagMango's documented endpoints plus ``/_sandbox/*`` for inspection.

Order of checks on an API request: auth (401) → the per-token rate limit (429) → injected
faults → the endpoint's own rules. Error bodies follow the documented shapes exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import Counter

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from importer.sandbox import validation
from importer.sandbox.config import SandboxConfig
from importer.sandbox.store import Store, new_object_id, now_iso, public
from importer.sandbox.traffic import Traffic

_TYPES = {400: ("Bad request", "BAD_REQUEST"), 401: ("Unauthorized", "UNAUTHORIZED"),
          403: ("Forbidden", "FORBIDDEN"), 404: ("Not Found", "NOT_FOUND"),
          500: ("Internal Server Error", "INTERNAL_SERVER_ERROR"), 502: ("Bad Gateway", "BAD_GATEWAY"),
          503: ("Service Unavailable", "SERVICE_UNAVAILABLE"), 504: ("Gateway Timeout", "GATEWAY_TIMEOUT")}
MESSAGES = {
    "COURSE_USER_NOT_CREATOR": "User has not completed creator onboarding.",
    "COURSE_NOT_FOUND": "The course does not exist, is deleted, or does not belong to this creator.",
    "CHAPTER_NOT_FOUND": "The chapter does not exist or does not belong to this creator.",
    "CHAPTER_USER_ASSET_NOT_FOUND": ("The content URL must be a TagMango CDN URL with an existing userAsset "
                                     "record. Upload the file via the TagMango upload API first."),
    "CHAPTER_VIDEO_UPLOAD_NOT_ENABLED": "Video uploads are not enabled for this creator.",
}
RATE_LIMIT_BODY = {"statusCode": 429, "message": "Too many requests, please try again later", "success": False}


def error(status: int, error_code: str | None = None, message: str | None = None) -> JSONResponse:
    """An error in the documented shape; ``result`` repeats ``message`` when there is an errorCode."""
    if status == 401:
        body = {"code": 401, "type": "Unauthorized", "statusMessage": "UNAUTHORIZED",
                "message": "Invalid token", "success": False}
        return JSONResponse(body, status_code=401)
    type_, status_message = _TYPES.get(status, ("Error", "ERROR"))
    if error_code is None:
        body = {"code": status, "type": type_, "statusMessage": status_message,
                "message": message or ("Invalid request" if status == 400 else type_), "success": False}
    else:
        text = message or MESSAGES[error_code]
        body = {"code": status, "type": "Bad Request" if status == 400 else type_, "statusMessage": status_message,
                "errorCode": error_code, "message": text, "result": text, "success": False}
    return JSONResponse(body, status_code=status)


class DroppedResponse(Response):
    """Starts a response and closes the connection mid-body: the client sees a dropped connection."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI signature
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"_id": "', "more_body": True})
        # Returning here leaves the body incomplete; uvicorn closes the connection.


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.state_dir)
        self.traffic = Traffic()
        self.rng = random.Random(config.seed)
        for url in config.assets:
            if not self.store.has_asset("*", url):
                self.store.add_asset(url)

    # -- envelope ----------------------------------------------------------------------

    def ok(self, entity: object) -> JSONResponse:
        mode = self.config.envelope
        if mode == "result":
            entity = {"message": "OK", "success": True, "result": entity, "code": 200, "statusMessage": "OK"}
        elif mode == "data":
            entity = {"message": "OK", "success": True, "data": entity}
        return JSONResponse(entity)

    # -- the gate every API request passes ---------------------------------------------

    async def gate(self, request: Request) -> tuple[str | None, Response | None]:
        """Auth, host header, rate limit and pre-handler faults. Returns (host, early response)."""
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if token not in self.config.tokens:
            return None, error(401)
        host = request.headers.get("x-whitelabel-host", "").strip().lower()
        if not host:
            return None, error(400)
        tied = self.config.tokens[token]
        if tied is not None and tied != host:
            return None, error(401)
        if not self.traffic.admit(token, self.config.rate_limit, self.config.rate_window_s):
            return None, JSONResponse(RATE_LIMIT_BODY, status_code=429)
        low, high = self.config.latency_s
        if high > 0:
            await asyncio.sleep(self.rng.uniform(low, high))
        roll = self.rng.random()
        c = self.config
        if roll < c.hang_rate:
            self.traffic.faults["hang"] += 1
            await asyncio.sleep(c.hang_s)
            return None, error(504, message="Gateway Timeout")
        roll -= c.hang_rate
        if roll < c.drop_rate:
            self.traffic.faults["drop"] += 1
            return None, DroppedResponse()
        roll -= c.drop_rate
        if roll < c.error_rate:
            self.traffic.faults["error"] += 1
            status = self.rng.choice([500, 502, 503])
            return None, error(status, message="Something went wrong")
        return host, None

    async def committed_failure(self) -> Response | None:
        """After a successful create: sometimes fail the answer although the course exists."""
        if self.rng.random() < self.config.commit_fail_rate:
            self.traffic.faults["commit_fail"] += 1
            if self.rng.random() < 0.5:
                return error(502, message="Bad Gateway")
            await asyncio.sleep(self.config.hang_s)
            return error(504, message="Gateway Timeout")
        return None

    # -- endpoints ---------------------------------------------------------------------

    async def create_course(self, request: Request, host: str) -> Response:
        if host in self.config.not_creator_hosts:
            return error(403, "COURSE_USER_NOT_CREATOR")
        try:
            body = validation.check_course(await _json(request), partial=False, known_mangoes=self.config.mangoes)
        except validation.Invalid:
            return error(400)
        course = self._new_course(host, body)
        failed = await self.committed_failure()
        return failed or self.ok(public(course))

    def _new_course(self, host: str, body: dict) -> dict:
        ts = now_iso()
        course_id, module_id = new_object_id(), new_object_id()
        chapter_ids = [new_object_id(), new_object_id()]
        for n, chapter_id in enumerate(chapter_ids, start=1):
            self.store.put("chapter", {
                "_id": chapter_id, "_host": host, "title": f"Chapter {n}", "description": "", "content": None,
                "contentType": None, "module": module_id, "course": course_id, "creator": _creator(host),
                "isFree": False, "embeddedLink": None, "additionalContents": [], "createdAt": ts, "updatedAt": ts})
        self.store.put("module", {"_id": module_id, "_host": host, "title": "Module 1", "course": course_id,
                                  "creator": _creator(host), "chapters": chapter_ids, "createdAt": ts, "updatedAt": ts})
        settings = body.get("settings", {})
        return self.store.put("course", {
            "_id": course_id, "_host": host, "title": body["title"], "description": body.get("description", ""),
            "coverImage": body.get("coverImage", ""), "modules": [module_id], "creator": _creator(host),
            "isPublished": False, "publishDate": ts, "firstChapter": chapter_ids[0], "secondChapter": chapter_ids[1],
            "moduleTerminology": "Section", "createdAt": ts, "updatedAt": ts, "mangoes": list(body["mangoes"]),
            "defaultVideoChapterThumbnail": "https://cdn.tagmango.com/defaults/video-thumbnail.png",
            "settings": {"validityInDays": settings.get("validityInDays"),
                         "showAsLocked": settings.get("showAsLocked", {}),
                         "enableDRM": settings.get("enableDRM", False),
                         "disableQna": settings.get("disableQna", False),
                         "disableComments": settings.get("disableComments", False)}})

    async def update_course(self, request: Request, host: str) -> Response:
        course = self.store.get("course", request.path_params["course_id"], host)
        if course is None:
            return error(404, "COURSE_NOT_FOUND")
        try:
            body = validation.check_course(await _json(request), partial=True, known_mangoes=self.config.mangoes)
        except validation.Invalid:
            return error(400)
        if body:
            course = dict(course)
            for key, value in body.items():
                course[key] = {**course["settings"], **value} if key == "settings" else value
            course["updatedAt"] = now_iso()
            self.store.put("course", course)
        return self.ok(public(course))

    async def get_courses(self, request: Request, host: str) -> Response:
        q = request.query_params
        try:
            limit = int(q.get("limit", "10"))
            page = int(q.get("page", "1"))
        except ValueError:
            return error(400)
        if limit < 1 or page < 1:
            return error(400)
        limit = min(limit, 100)
        courses = sorted(self.store.courses_of(host), key=lambda c: c["createdAt"], reverse=True)
        if q.get("mangoes"):
            wanted = {m.strip() for m in q["mangoes"].split(",") if m.strip()}
            courses = [c for c in courses if wanted & set(c["mangoes"])]
        if q.get("isPublished") in ("true", "false"):
            courses = [c for c in courses if c["isPublished"] == (q["isPublished"] == "true")]
        items = [{"_id": c["_id"], "title": c["title"], "description": c["description"],
                  "coverImage": c["coverImage"], "isPublished": c["isPublished"],
                  "mangoes": [{"_id": m, "creator": _creator(host), "title": f"Mango {m[-4:]}"} for m in c["mangoes"]],
                  "progress": 0} for c in courses[(page - 1) * limit: page * limit]]
        return self.ok({"total": len(courses), "data": items})

    async def update_chapter(self, request: Request, host: str) -> Response:
        chapter = self.store.get("chapter", request.path_params["chapter_id"], host)
        if chapter is None:
            return error(404, "CHAPTER_NOT_FOUND")
        try:
            body = validation.check_chapter(await _json(request))
        except validation.Invalid:
            return error(400)
        if "content" in body:
            url = body["content"]
            if not url.startswith(self.config.cdn_prefix) or (
                    self.config.strict_assets and not self.store.has_asset(host, url)):
                return error(400, "CHAPTER_USER_ASSET_NOT_FOUND")
            if body["contentType"] == "video" and host in self.config.video_disabled_hosts:
                return error(403, "CHAPTER_VIDEO_UPLOAD_NOT_ENABLED")
        if body:
            chapter = {**chapter, **body, "updatedAt": now_iso()}
            self.store.put("chapter", chapter)
        return self.ok(public(chapter))

    # -- inspection --------------------------------------------------------------------

    async def stats(self, request: Request) -> Response:
        snap = self.traffic.snapshot()
        per_host: dict[str, Counter] = {}
        for course in self.store.objects["course"].values():
            per_host.setdefault(course["_host"], Counter())[course["title"]] += 1
        snap["courses_by_host"] = {h: sum(c.values()) for h, c in per_host.items()}
        snap["duplicate_titles"] = {h: {t: n for t, n in c.items() if n > 1} for h, c in per_host.items()
                                    if any(n > 1 for n in c.values())}
        snap["config"] = self.config.fault_settings()
        return JSONResponse(snap)

    async def arrivals(self, request: Request) -> Response:
        return JSONResponse(self.traffic.arrivals)

    async def dump(self, request: Request) -> Response:
        host = request.query_params.get("host")
        out = {kind: [obj for obj in objs.values() if host is None or obj["_host"] == host]
               for kind, objs in self.store.objects.items()}
        return JSONResponse(out)

    async def register_asset(self, request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            return JSONResponse({"error": "send {\"url\": ..., \"host\": optional}"}, status_code=400)
        return JSONResponse(self.store.add_asset(body["url"], body.get("host") or "*"))

    async def set_config(self, request: Request) -> Response:
        try:
            self.config.update_faults(await _json(request) or {})
        except (ValueError, TypeError, IndexError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.config.fault_settings())

    async def reset(self, request: Request) -> Response:
        self.store.reset()
        self.traffic.reset()
        return JSONResponse({"reset": True})


async def _json(request: Request) -> object:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return None  # fails the body checks: generic 400


def _creator(host: str) -> str:
    """A stable fake creator id per host."""
    return hashlib.sha256(host.encode()).hexdigest()[:24]


def build_app(config: SandboxConfig | None = None) -> Starlette:
    sandbox = Sandbox(config or SandboxConfig())

    def api(handler, name: str):  # noqa: ANN001, ANN202
        async def endpoint(request: Request) -> Response:
            host, early = await sandbox.gate(request)
            response = early if early is not None else await handler(request, host)
            sandbox.traffic.record(name, response.status_code)
            return response
        return endpoint

    routes = [
        Route("/api/v1/external/courses", api(sandbox.create_course, "create_course"), methods=["POST"]),
        Route("/api/v1/external/courses", api(sandbox.get_courses, "get_courses"), methods=["GET"]),
        Route("/api/v1/external/courses/{course_id}", api(sandbox.update_course, "update_course"), methods=["PATCH"]),
        Route("/api/v1/external/chapters/{chapter_id}", api(sandbox.update_chapter, "update_chapter"),
              methods=["PATCH"]),
        Route("/_sandbox/stats", sandbox.stats, methods=["GET"]),
        Route("/_sandbox/arrivals", sandbox.arrivals, methods=["GET"]),
        Route("/_sandbox/data", sandbox.dump, methods=["GET"]),
        Route("/_sandbox/assets", sandbox.register_asset, methods=["POST"]),
        Route("/_sandbox/config", sandbox.set_config, methods=["POST"]),
        Route("/_sandbox/reset", sandbox.reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    return app
