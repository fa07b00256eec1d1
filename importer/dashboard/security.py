"""Who may look and who may act: basic auth on every page (like Flower), and for actions a POST that
carries a CSRF token bound to the authenticated user and the job, from a page of this very origin.

A cross-site page cannot read our token (the same-origin policy), and a browser sends ``Origin`` (or at
least ``Referer``) with a cross-site POST, so either check alone stops a forged requeue; both are applied.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request


class Guard:
    def __init__(self, auth: str, secret: bytes | None = None) -> None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise ValueError("basic auth must be user:password")
        self.user, self._password = user, password
        self._secret = secret or secrets.token_bytes(32)

    # -- basic auth ------------------------------------------------------------------------------
    def user_of(self, request: Request) -> str | None:
        """The user if the request carries our credentials, else None."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        ok = hmac.compare_digest(user.encode(), self.user.encode()) & hmac.compare_digest(
            password.encode(), self._password.encode())
        return user if ok else None

    # -- CSRF ------------------------------------------------------------------------------------
    def csrf_token(self, user: str, job_id: str, action: str = "requeue") -> str:
        """Bound to this server's secret, the user and their password (a changed password voids it), the job and
        the action (requeue, undo)."""
        password_hash = hashlib.sha256(self._password.encode()).hexdigest()
        message = f"{action}|{user}|{password_hash}|{job_id}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def check_action(self, request: Request, user: str, job_id: str, token: str, action: str = "requeue") -> str | None:
        """None if the POST may act, else why not."""
        if not hmac.compare_digest(token.encode(), self.csrf_token(user, job_id, action).encode()):
            return "the form is out of date or did not come from this dashboard (CSRF token)"
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        origin = request.headers.get("origin")
        if origin and origin != "null":
            return None if origin == own else f"cross-site request refused (Origin {origin})"
        referer = request.headers.get("referer")
        if referer:
            parts = urlsplit(referer)
            return None if f"{parts.scheme}://{parts.netloc}" == own else "cross-site request refused (Referer)"
        return "request refused: no Origin or Referer header"
