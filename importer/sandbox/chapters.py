"""Chapter endpoints: Create Chapter (5.6), Update Chapter (5.7), Delete Chapter (5.8).

Create Chapter's error responses are not documented. The sandbox applies Update Chapter's
content rules to it (400 ``CHAPTER_USER_ASSET_NOT_FOUND``, 403 ``CHAPTER_VIDEO_UPLOAD_NOT_ENABLED``)
and answers an unknown or foreign module with 404 ``MODULE_NOT_FOUND``, the code Update Module
uses for the same case. New chapters are appended to their module's ``chapters``.

Handlers read the request body before they look anything up: with no ``await`` between reading
a parent and writing it back, concurrent requests cannot lose each other's changes.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from importer.sandbox import validation
from importer.sandbox.answers import empty, error, read_json
from importer.sandbox.core import Sandbox
from importer.sandbox.store import body_digest, new_object_id, now_iso, public


def chapter_object(host: str, module: dict, fields: dict, digest: str | None = None) -> dict:
    """A chapter with every field 5.6 shows; ``fields`` are the ones the request sent."""
    ts = now_iso()
    chapter = {
        "_id": new_object_id(), "_host": host, "title": fields["title"], "description": fields["description"],
        "content": None, "contentType": None, "contentFileName": None, "contentSize": None,
        "module": module["_id"], "creator": module["creator"], "course": module["course"],
        "compressedVideoUrl": None, "totalDuration": 0, "assignment": None, "customThumbnail": False,
        "embeddedLink": None, "createdAt": ts, "updatedAt": ts, "defaultThumbnail": None, "isFree": False,
        "additionalContents": []}
    chapter.update(_with_file_name(fields))
    if digest is not None:
        chapter["_digest"] = digest
    return chapter


def _with_file_name(fields: dict) -> dict:
    if fields.get("content"):
        return {**fields, "contentFileName": fields["content"].rstrip("/").rsplit("/", 1)[-1]}
    return fields


def content_refusal(sb: Sandbox, host: str, body: dict) -> Response | None:
    """Update Chapter's content rules (shared with Create Chapter): CDN asset, video permission."""
    if "content" not in body:
        return None
    url = body["content"]
    if not url.startswith(sb.config.cdn_prefix) or (sb.config.strict_assets and not sb.store.has_asset(host, url)):
        return error(400, "CHAPTER_USER_ASSET_NOT_FOUND")
    if body["contentType"] == "video" and host in sb.config.video_disabled_hosts:
        return error(403, "CHAPTER_VIDEO_UPLOAD_NOT_ENABLED")
    return None


async def create_chapter(sb: Sandbox, request: Request, host: str) -> Response:
    raw = await read_json(request)  # first: no await between reading the module and writing it back
    module = sb.store.get("module", request.path_params["module_id"], host)
    if module is None:
        return error(404, "MODULE_NOT_FOUND")  # undocumented for this endpoint; see the module docstring
    try:
        body = validation.check_chapter(raw, partial=False)
    except validation.Invalid:
        return error(400)
    refused = content_refusal(sb, host, body)
    if refused is not None:
        return refused
    chapter = sb.store.put("chapter", chapter_object(host, module, body, body_digest(body)))
    sb.store.put("module", {**module, "chapters": [*module["chapters"], chapter["_id"]], "updatedAt": now_iso()})
    failed = await sb.faults.committed_failure()
    return failed or sb.ok(public(chapter))


async def update_chapter(sb: Sandbox, request: Request, host: str) -> Response:
    raw = await read_json(request)
    chapter = sb.store.get("chapter", request.path_params["chapter_id"], host)
    if chapter is None:
        return error(404, "CHAPTER_NOT_FOUND")
    try:
        body = validation.check_chapter(raw)
    except validation.Invalid:
        return error(400)
    refused = content_refusal(sb, host, body)
    if refused is not None:
        return refused
    if body:
        chapter = sb.store.put("chapter", {**chapter, **_with_file_name(body), "updatedAt": now_iso()})
    return sb.ok(public(chapter))


async def delete_chapter(sb: Sandbox, request: Request, host: str) -> Response:
    """Delete the chapter and take it out of its module; a second delete is 404 ``CHAPTER_NOT_FOUND``.

    The course's ``firstChapter``/``secondChapter`` are left as they were (the docs do not say
    whether TagMango changes them).
    """
    chapter = sb.store.get("chapter", request.path_params["chapter_id"], host)
    if chapter is None:
        return error(404, "CHAPTER_NOT_FOUND")
    module = sb.store.objects["module"].get(chapter["module"])
    if module is not None and chapter["_id"] in module["chapters"]:
        sb.store.put("module", {**module, "chapters": [c for c in module["chapters"] if c != chapter["_id"]],
                                "updatedAt": now_iso()})
    sb.store.delete("chapter", chapter["_id"])
    return empty(sb.config.envelope)

