"""Course endpoints: Create Course (5.1), Update Course (5.2), Get Courses (5.3).

A course's ``modules`` list is the truth about its modules and their order: Create Course
starts it with one placeholder module, Create Module appends to it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from importer.sandbox import validation
from importer.sandbox.answers import error, read_json
from importer.sandbox.chapters import chapter_object
from importer.sandbox.core import Sandbox
from importer.sandbox.modules import module_object
from importer.sandbox.store import creator_id, new_object_id, now_iso, public


async def create_course(sb: Sandbox, request: Request, host: str) -> Response:
    if host in sb.config.not_creator_hosts:
        return error(403, "COURSE_USER_NOT_CREATOR")
    try:
        body = validation.check_course(await read_json(request), partial=False, known_mangoes=sb.config.mangoes)
    except validation.Invalid:
        return error(400)
    course = new_course(sb, host, body)
    failed = await sb.faults.committed_failure()
    return failed or sb.ok(public(course))


def new_course(sb: Sandbox, host: str, body: dict) -> dict:
    """The course, and what its documented response implies comes with it: a module holding the
    two chapters named by ``firstChapter`` and ``secondChapter``."""
    ts = now_iso()
    course_id = new_object_id()
    module = module_object(host, course_id, "Module 1")
    chapters = [chapter_object(host, module, {"title": f"Chapter {n}", "description": ""}) for n in (1, 2)]
    module["chapters"] = [c["_id"] for c in chapters]
    for chapter in chapters:
        sb.store.put("chapter", chapter)
    sb.store.put("module", module)
    settings = body.get("settings", {})
    return sb.store.put("course", {
        "_id": course_id, "_host": host, "title": body["title"], "description": body.get("description", ""),
        "coverImage": body.get("coverImage", ""), "modules": [module["_id"]], "creator": creator_id(host),
        "isPublished": False, "publishDate": ts, "firstChapter": chapters[0]["_id"],
        "secondChapter": chapters[1]["_id"], "moduleTerminology": "Section", "createdAt": ts, "updatedAt": ts,
        "mangoes": list(body["mangoes"]),
        "defaultVideoChapterThumbnail": "https://cdn.tagmango.com/defaults/video-thumbnail.png",
        "settings": {"validityInDays": settings.get("validityInDays"),
                     "showAsLocked": settings.get("showAsLocked", {}),
                     "enableDRM": settings.get("enableDRM", False),
                     "disableQna": settings.get("disableQna", False),
                     "disableComments": settings.get("disableComments", False)}})


async def update_course(sb: Sandbox, request: Request, host: str) -> Response:
    """Partial update; ``{}`` changes nothing and answers the course (its ``modules`` in order)."""
    raw = await read_json(request)  # first: no await between reading the course and writing it back
    course = sb.store.get("course", request.path_params["course_id"], host)
    if course is None:
        return error(404, "COURSE_NOT_FOUND")
    try:
        body = validation.check_course(raw, partial=True, known_mangoes=sb.config.mangoes)
    except validation.Invalid:
        return error(400)
    if body:
        course = dict(course)
        for key, value in body.items():
            course[key] = {**course["settings"], **value} if key == "settings" else value
        course["updatedAt"] = now_iso()
        sb.store.put("course", course)
    return sb.ok(public(course))


async def get_courses(sb: Sandbox, request: Request, host: str) -> Response:
    q = request.query_params
    try:
        limit = int(q.get("limit", "10"))
        page = int(q.get("page", "1"))
    except ValueError:
        return error(400)
    if limit < 1 or page < 1:
        return error(400)
    limit = min(limit, 100)
    courses = sorted(sb.store.courses_of(host), key=lambda c: c["createdAt"], reverse=True)
    if q.get("mangoes"):
        wanted = {m.strip() for m in q["mangoes"].split(",") if m.strip()}
        courses = [c for c in courses if wanted & set(c["mangoes"])]
    if q.get("isPublished") in ("true", "false"):
        courses = [c for c in courses if c["isPublished"] == (q["isPublished"] == "true")]
    items = [{"_id": c["_id"], "title": c["title"], "description": c["description"],
              "coverImage": c["coverImage"], "isPublished": c["isPublished"],
              "mangoes": [{"_id": m, "creator": creator_id(host), "title": f"Mango {m[-4:]}"} for m in c["mangoes"]],
              "progress": 0} for c in courses[(page - 1) * limit: page * limit]]
    return sb.ok({"total": len(courses), "data": items})
