"""Module endpoints: Create Module (5.4) and Update Module (5.5), and Delete Module, which TagMango does
not document (5.12) and the sandbox only routes when ``delete_module`` is on (see ``app.py``).

A module's ``chapters`` list is the truth about its chapters and their order: Create Chapter
appends to it, Delete Chapter removes from it. New modules are appended to their course's
``modules`` (the docs do not say where a new module goes; appending is the only order that
needs no reorder endpoint, and TagMango documents none).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from importer.sandbox import validation
from importer.sandbox.answers import empty, error, read_json
from importer.sandbox.core import Sandbox
from importer.sandbox.store import body_digest, creator_id, new_object_id, now_iso, public


def module_object(host: str, course_id: str, title: str, digest: str | None = None) -> dict:
    """A module as 5.4 shows it: ``{createdAt, updatedAt, _id, title, creator, course, chapters}``."""
    ts = now_iso()
    module = {"createdAt": ts, "updatedAt": ts, "_id": new_object_id(), "_host": host, "title": title,
              "creator": creator_id(host), "course": course_id, "chapters": []}
    if digest is not None:
        module["_digest"] = digest
    return module


async def create_module(sb: Sandbox, request: Request, host: str) -> Response:
    raw = await read_json(request)  # first: no await between reading the course and writing it back
    # The course is looked up before the body is checked, as Update Course and Update Chapter do.
    course = sb.store.get("course", request.path_params["course_id"], host)
    if course is None:
        return error(404, "COURSE_NOT_FOUND")
    try:
        body = validation.check_module(raw, partial=False)
    except validation.Invalid:
        return error(400)
    module = sb.store.put("module", module_object(host, course["_id"], body["title"], body_digest(body)))
    sb.store.put("course", {**course, "modules": [*course["modules"], module["_id"]], "updatedAt": now_iso()})
    failed = await sb.faults.committed_failure()
    return failed or sb.ok(public(module))


async def update_module(sb: Sandbox, request: Request, host: str) -> Response:
    """Partial update; ``{}`` changes nothing and answers the module (its ``chapters`` in order)."""
    raw = await read_json(request)
    module = sb.store.get("module", request.path_params["module_id"], host)
    if module is None:
        return error(404, "MODULE_NOT_FOUND")
    try:
        body = validation.check_module(raw, partial=True)
    except validation.Invalid:
        return error(400)
    if body:
        module = sb.store.put("module", {**module, **body, "updatedAt": now_iso()})
    return sb.ok(public(module))


async def delete_module(sb: Sandbox, request: Request, host: str) -> Response:
    """Not a documented TagMango endpoint; answers as Delete Chapter does (5.8), with Update Module's 404.

    Deletes the module and all its chapters (each recorded as a deleted chapter, as Delete Chapter
    records one) and takes the module out of its course's ``modules``, in one journal write. Another
    host's module, or a second delete, is 404 ``MODULE_NOT_FOUND``. The course's
    ``firstChapter``/``secondChapter`` are left as they were, as Delete Chapter leaves them.
    """
    module = sb.store.get("module", request.path_params["module_id"], host)
    if module is None:
        return error(404, "MODULE_NOT_FOUND")
    # Its chapters list, and (there should be none) any other chapter that still names the module.
    named = [c["_id"] for c in sb.store.objects["chapter"].values() if c["module"] == module["_id"]]
    chapter_ids = list(dict.fromkeys([*module["chapters"], *named]))
    puts = []
    course = sb.store.objects["course"].get(module["course"])
    if course is not None and module["_id"] in course["modules"]:
        puts.append(("course", {**course, "modules": [m for m in course["modules"] if m != module["_id"]],
                                "updatedAt": now_iso()}))
    sb.store.change(puts, [*(("chapter", c) for c in chapter_ids), ("module", module["_id"])])
    return empty(sb.config.envelope)
