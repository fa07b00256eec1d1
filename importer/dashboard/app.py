"""The dashboard as a Starlette application: pages (GET) and two actions, requeue and undo (POST only)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from importer.dashboard import chart, pages
from importer.dashboard.data import JobData
from importer.dashboard.security import Guard

#: Called after a requeue from the page with the job id; returns a note for the user (e.g. "started a
#: worker") or None. Lets the command decide whether a local worker has to be started.
AfterRequeue = Callable[[str], "str | None"]
#: Runs ``undo`` for a job: (the undo's job id or None, what to tell the user, whether it was refused).
StartUndo = Callable[[str], "tuple[str | None, str, bool]"]


def create_app(data: JobData, guard: Guard, *, flower_url: Callable[[], str | None] = lambda: None,
               after_requeue: AfterRequeue | None = None, allowed_hosts: list[str] | None = None,
               start_undo: StartUndo | None = None) -> Starlette:
    def authed(handler):  # noqa: ANN001, ANN202
        async def wrapper(request: Request) -> Response:
            user = guard.user_of(request)
            if user is None:
                return PlainTextResponse("authentication required", status_code=401,
                                         headers={"WWW-Authenticate": 'Basic realm="tagmango-import dashboard"'})
            request.state.user = user
            return await handler(request)
        return wrapper

    @authed
    async def jobs(request: Request) -> Response:
        return HTMLResponse(pages.jobs_page(data.jobs(), flower_url()))

    @authed
    async def job(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        summary = data.job(job_id)
        if summary is None:
            return HTMLResponse(pages.not_found(job_id, flower_url()), status_code=404)
        limit = data.limit_per_s(summary)
        total, contributors = data.credential_timeline(summary)
        own = data.timeline(job_id)
        seconds = [s for events in total.values() for s in events]
        start = min([summary.created_at, *[s for events in own.values() for s in events]])
        # While running, up to the last complete second; when final, up to the last request.
        end = time.time() - 1 if not summary.final else max(seconds or [start + 1])
        svg = chart.render(total, limit, start, end, own=own if contributors > 1 else None,
                           title=f"requests per second to {summary.host}")
        flash = request.query_params.get("requeued")
        note = request.query_params.get("note", "")
        message = ""
        kind = "flash"
        if flash is not None:
            message = f"Requeued {flash} row(s) with {request.query_params.get('code', '')}. {note}".strip()
        elif request.query_params.get("undo"):
            message, kind = request.query_params["undo"], request.query_params.get("kind", "flash")
            kind = kind if kind in ("flash", "error") else "flash"
        rows, chars = data.snapshot(job_id)
        undo_of, undone_by = data.undo_links(job_id)
        undo = pages.undo_section(summary, rows=rows, chars=chars, undo_of=undo_of, undone_by=undone_by,
                                  csrf=guard.csrf_token(request.state.user, job_id, "undo"))
        html = pages.job_page(summary, kinds=data.kinds(job_id), groups=data.dead_groups(job_id), chart_svg=svg,
                              eta_s=data.eta_s(summary), limit_per_s=limit, other_jobs=contributors,
                              csrf=guard.csrf_token(request.state.user, job_id),
                              results_name=data.results_name(job_id), flower_url=flower_url(), flash=message,
                              flash_kind=kind, undo=undo)
        return HTMLResponse(html)

    @authed
    async def requeue(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        problem = guard.check_action(request, request.state.user, job_id, form.get("csrf", ""))
        if problem:
            return PlainTextResponse(problem, status_code=403)
        if data.job(job_id) is None:
            return PlainTextResponse("no such job", status_code=404)
        code = form.get("code", "").strip()
        if not code:
            return PlainTextResponse("say which error code to requeue", status_code=400)
        outcome = data.requeue(job_id, code)
        note = after_requeue(job_id) if (after_requeue and outcome["requeued"]) else None
        query = {"requeued": outcome["requeued"], "code": code}
        if outcome.get("still_dead"):
            note = f"{len(outcome['still_dead'])} chapter row(s) stay dead because their course is dead. {note or ''}"
        if note:
            query["note"] = note
        return RedirectResponse(f"/jobs/{quote(job_id)}?{urlencode(query)}", status_code=303)

    @authed
    async def undo(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        problem = guard.check_action(request, request.state.user, job_id, form.get("csrf", ""), "undo")
        if problem:
            return PlainTextResponse(problem, status_code=403)
        if data.job(job_id) is None:
            return PlainTextResponse("no such job", status_code=404)
        if start_undo is None:
            return PlainTextResponse("undo is not available here", status_code=501)
        undo_id, text, refused = await run_in_threadpool(start_undo, job_id)
        target = undo_id or job_id
        query = {"undo": text, "kind": "error" if refused or not undo_id else "flash"}
        return RedirectResponse(f"/jobs/{quote(target)}?{urlencode(query)}", status_code=303)

    @authed
    async def results(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if data.job(job_id) is None:
            return PlainTextResponse("no such job", status_code=404)
        folder = Path(tempfile.mkdtemp(prefix="tm-results-"))
        path = data.write_results(job_id, folder)

        def cleanup() -> None:
            path.unlink(missing_ok=True)
            folder.rmdir()

        return FileResponse(path, filename=path.name, background=BackgroundTask(cleanup))

    routes = [
        Route("/", jobs, methods=["GET"]),
        Route("/jobs/{job_id}", job, methods=["GET"]),
        Route("/jobs/{job_id}/requeue", requeue, methods=["POST"]),
        Route("/jobs/{job_id}/undo", undo, methods=["POST"]),
        Route("/jobs/{job_id}/results", results, methods=["GET"]),
    ]
    hosts = allowed_hosts or ["127.0.0.1", "localhost"]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])
