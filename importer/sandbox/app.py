"""The sandbox's HTTP surface: TagMango's documented endpoints plus ``/_sandbox/*`` for inspection.

Order of checks on an API request: auth (401) → the per-token rate limit (429) → a stall and
the injected latency → injected faults → the endpoint's own rules. With ``count_after_latency``
the rate limit comes after the stall and the latency instead. Error bodies follow the documented
shapes exactly (``answers.py``); each resource's endpoints live in their own module, and the
``Sandbox`` they share (state and the gate above) in ``core.py``, which imports none of them.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from importer.sandbox import chapters, courses, modules
from importer.sandbox.config import SandboxConfig
from importer.sandbox.core import Sandbox
from importer.sandbox.inspection import Inspection
from importer.sandbox.traffic import is_write


def build_app(config: SandboxConfig | None = None) -> Starlette:
    """The app. ``DELETE .../modules/{id}``, not a documented endpoint, is routed only while ``delete_module`` is on.

    Off, that path answers exactly what a path the sandbox does not route answers: Starlette's plain-text
    404 ``Not Found``, before auth, the rate limit and faults, and counted nowhere, as a server without the
    route would. (Before the route existed, the path matched Update Module's and a DELETE got 405.)
    """
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

    delete_module = api(modules.delete_module, "delete_module")

    async def delete_module_if_on(request: Request) -> Response:
        if not sandbox.config.delete_module:  # read per request: POST /_sandbox/config flips it live
            raise HTTPException(status_code=404)  # the very answer of Starlette's router for an unknown path
        return await delete_module(request)

    prefix = "/api/v1/external"
    routes = [
        Route(f"{prefix}/courses", api(courses.create_course, "create_course"), methods=["POST"]),
        Route(f"{prefix}/courses", api(courses.get_courses, "get_courses"), methods=["GET"]),
        Route(f"{prefix}/courses/{{course_id}}", api(courses.update_course, "update_course"), methods=["PATCH"]),
        Route(f"{prefix}/courses/{{course_id}}/modules", api(modules.create_module, "create_module"),
              methods=["POST"]),
        Route(f"{prefix}/modules/{{module_id}}", api(modules.update_module, "update_module"), methods=["PATCH"]),
        Route(f"{prefix}/modules/{{module_id}}", delete_module_if_on, methods=["DELETE"]),
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
