"""What the sandbox answers: documented error bodies, the success envelope, and request-body parsing."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

_TYPES = {400: ("Bad request", "BAD_REQUEST"), 401: ("Unauthorized", "UNAUTHORIZED"),
          403: ("Forbidden", "FORBIDDEN"), 404: ("Not Found", "NOT_FOUND"),
          500: ("Internal Server Error", "INTERNAL_SERVER_ERROR"), 502: ("Bad Gateway", "BAD_GATEWAY"),
          503: ("Service Unavailable", "SERVICE_UNAVAILABLE"), 504: ("Gateway Timeout", "GATEWAY_TIMEOUT")}
MESSAGES = {
    "COURSE_USER_NOT_CREATOR": "User has not completed creator onboarding.",
    "COURSE_NOT_FOUND": "The course does not exist, is deleted, or does not belong to this creator.",
    "MODULE_NOT_FOUND": "The module does not exist or does not belong to this creator.",
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


def ok(envelope: str, entity: object) -> JSONResponse:
    """A success body: bare (the endpoint pages) or wrapped in ``result``/``data`` (the overview pages)."""
    if envelope == "result":
        entity = {"message": "OK", "success": True, "result": entity, "code": 200, "statusMessage": "OK"}
    elif envelope == "data":
        entity = {"message": "OK", "success": True, "data": entity}
    return JSONResponse(entity)


def empty(envelope: str) -> Response:
    """Delete Chapter's success: the endpoint page shows "Empty", so bare mode sends a 200 with no body.

    The wrapped modes follow the overview pages (every success in the envelope), with a null payload.
    """
    if envelope == "bare":
        return Response(status_code=200)
    return ok(envelope, None)


async def read_json(request: Request) -> object:
    """The request body as JSON; no body is ``{}``; malformed JSON is None (fails every body check: 400)."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return None
