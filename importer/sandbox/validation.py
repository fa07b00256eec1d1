"""Request-body checks of the sandbox. A failed check is TagMango's generic 400 ``Invalid request``."""

from __future__ import annotations

import re

from importer.sandbox.config import CONTENT_TYPES

OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
COURSE_FIELDS = {"title", "description", "mangoes", "coverImage", "settings"}
SETTINGS_FIELDS = {"validityInDays", "showAsLocked", "enableDRM", "disableQna", "disableComments"}
MODULE_FIELDS = {"title"}
CHAPTER_FIELDS = {"title", "description", "content", "contentType", "isFree", "embeddedLink", "additionalContents"}


class Invalid(Exception):
    """The body breaks a rule; the API answers the generic 400."""


def check_course(body: object, *, partial: bool, known_mangoes: set[str]) -> dict:
    if not isinstance(body, dict):
        raise Invalid("body is not an object")
    unknown = set(body) - COURSE_FIELDS
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}")
    if (not partial or "title" in body) and (not isinstance(body.get("title"), str) or not body["title"].strip()):
        raise Invalid("title is required")
    if not partial or "mangoes" in body:
        mangoes = body.get("mangoes")
        if not isinstance(mangoes, list) or not mangoes:
            raise Invalid("mangoes must be a non-empty list")
        for m in mangoes:
            if not isinstance(m, str) or not OBJECT_ID.match(m) or m not in known_mangoes:
                raise Invalid("unknown mango")
    for key in ("description", "coverImage"):
        if key in body and not isinstance(body[key], str):
            raise Invalid(f"{key} must be a string")
    if "settings" in body:
        _check_settings(body["settings"], known_mangoes)
    return body


def _check_settings(settings: object, known_mangoes: set[str]) -> None:
    if not isinstance(settings, dict) or set(settings) - SETTINGS_FIELDS:
        raise Invalid("bad settings")
    v = settings.get("validityInDays")
    if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 1):
        raise Invalid("bad validityInDays")
    for key in ("enableDRM", "disableQna", "disableComments"):
        if key in settings and not isinstance(settings[key], bool):
            raise Invalid(f"{key} must be a boolean")
    locked = settings.get("showAsLocked")
    if locked is not None:
        if not isinstance(locked, dict) or set(locked) - {"mangoToSell", "mangoesToShowAsPaid"}:
            raise Invalid("bad showAsLocked")
        ids = [locked["mangoToSell"]] if "mangoToSell" in locked else []
        paid = locked.get("mangoesToShowAsPaid", [])
        if not isinstance(paid, list):
            raise Invalid("bad mangoesToShowAsPaid")
        for m in ids + paid:
            if not isinstance(m, str) or m not in known_mangoes:
                raise Invalid("unknown mango")


def check_module(body: object, *, partial: bool) -> dict:
    """Create Module needs ``title`` (the only documented field); Update Module may send it."""
    if not isinstance(body, dict):
        raise Invalid("body is not an object")
    if set(body) - MODULE_FIELDS:
        raise Invalid("unknown fields")
    if (not partial or "title" in body) and (not isinstance(body.get("title"), str) or not body["title"].strip()):
        raise Invalid("title is required")
    return body


def check_chapter(body: object, *, partial: bool = True) -> dict:
    """Update Chapter's rules; Create Chapter (``partial=False``) also needs a title and a description."""
    if not isinstance(body, dict):
        raise Invalid("body is not an object")
    if set(body) - CHAPTER_FIELDS:
        raise Invalid("unknown fields")
    if not partial:
        for key in ("title", "description"):
            if not isinstance(body.get(key), str) or not body[key].strip():
                raise Invalid(f"{key} is required")
    if ("content" in body) != ("contentType" in body):
        raise Invalid("content and contentType must be sent together")
    for key in ("title", "description", "content", "embeddedLink"):
        if key in body and not isinstance(body[key], str):
            raise Invalid(f"{key} must be a string")
    if "title" in body and not body["title"].strip():
        raise Invalid("title must not be empty")
    if "contentType" in body and body["contentType"] not in CONTENT_TYPES:
        raise Invalid("unknown contentType")
    if "isFree" in body and not isinstance(body["isFree"], bool):
        raise Invalid("isFree must be a boolean")
    extra = body.get("additionalContents")
    if extra is not None and (not isinstance(extra, list) or not all(isinstance(u, str) for u in extra)):
        raise Invalid("additionalContents must be a list of URLs")
    return body
