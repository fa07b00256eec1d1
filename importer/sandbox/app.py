"""The sandbox's HTTP surface: TagMango's documented endpoints plus ``/_sandbox/*`` for inspection.

Order of checks on an API request: auth (401) → the per-token rate limit (429) → a stall and
the injected latency → injected faults → the endpoint's own rules. With ``count_after_latency``
the rate limit comes after the stall and the latency instead. Error bodies follow the documented
shapes exactly (``answers.py``); each resource's endpoints live in their own module.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from importer.sandbox import chapters, courses, modules
from importer.sandbox.answers import RATE_LIMIT_BODY, error, ok
from importer.sandbox.config import SandboxConfig
from importer.sandbox.faults import Faults
from importer.sandbox.inspection import Inspection
from importer.sandbox.store import Store
from importer.sandbox.traffic import Traffic, is_write


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.state_dir)
        self.traffic = Traffic()
        self.faults = Faults(config, self.traffic)
        for url in config.assets:
            if not self.store.has_asset("*", url):
                self.store.add_asset(url)

    def ok(self, entity: object) -> JSONResponse:
        return ok(self.config.envelope, entity)

    async def gate(self, request: Request) -> tuple[str | None, Response | None]:
        """Auth, host header, rate limit, stall, latency and pre-handler faults. Returns (host, early response)."""
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
        after = self.config.count_after_latency
        if not after and not self._admit(token):
            return None, JSONResponse(RATE_LIMIT_BODY, status_code=429)
        await self.faults.hold_while_stalled()
        await self.faults.latency()
        if after and not self._admit(token):
            return None, JSONResponse(RATE_LIMIT_BODY, status_code=429)
        early = await self.faults.before_handler()
        return (None, early) if early is not None else (host, None)

    def _admit(self, token: str) -> bool:
        return self.traffic.admit(token, self.config.rate_limit, self.config.rate_window_s)


def build_app(config: SandboxConfig | None = None) -> Starlette:
    sandbox = Sandbox(config or SandboxConfig())
    inspection = Inspection(sandbox)

    def api(handler, name: str):  # noqa: ANN001, ANN202
        async def endpoint(request: Request) -> Response:
            sandbox.traffic.classify(name, is_write(request.method, await request.body()))
            host, early = await sandbox.gate(request)
            response = early if early is not None else await handler(sandbox, request, host)
            sandbox.traffic.record(name, response.status_code)
            return response
        return endpoint

    prefix = "/api/v1/external"
    routes = [
        Route(f"{prefix}/courses", api(courses.create_course, "create_course"), methods=["POST"]),
        Route(f"{prefix}/courses", api(courses.get_courses, "get_courses"), methods=["GET"]),
        Route(f"{prefix}/courses/{{course_id}}", api(courses.update_course, "update_course"), methods=["PATCH"]),
        Route(f"{prefix}/courses/{{course_id}}/modules", api(modules.create_module, "create_module"),
              methods=["POST"]),
        Route(f"{prefix}/modules/{{module_id}}", api(modules.update_module, "update_module"), methods=["PATCH"]),
        Route(f"{prefix}/modules/{{module_id}}/chapters", api(chapters.create_chapter, "create_chapter"),
              methods=["POST"]),
        Route(f"{prefix}/chapters/{{chapter_id}}", api(chapters.update_chapter, "update_chapter"),
              methods=["PATCH"]),
        Route(f"{prefix}/chapters/{{chapter_id}}", api(chapters.delete_chapter, "delete_chapter"),
              methods=["DELETE"]),
        Route("/_sandbox/stats", inspection.stats, methods=["GET"]),
        Route("/_sandbox/arrivals", inspection.arrivals, methods=["GET"]),
        Route("/_sandbox/data", inspection.dump, methods=["GET"]),
        Route("/_sandbox/tree", inspection.tree, methods=["GET"]),
        Route("/_sandbox/assets", inspection.register_asset, methods=["POST"]),
        Route("/_sandbox/config", inspection.set_config, methods=["POST"]),
        Route("/_sandbox/reset", inspection.reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    return app
