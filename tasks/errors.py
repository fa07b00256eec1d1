"""Exceptions raised at the TagMango API boundary.

Callers (the Celery tasks) never see httpx exceptions: the client translates every
outcome into one of these classes, and the class alone decides what happens next.

    ApiError                      any failed call
    ├── TransientApiError         worth retrying later, with backoff
    │   ├── RateLimited           429; carries retry_after (seconds) when the server sent one
    │   ├── ServerError           500/502/503/504, or a 2xx body we could not read
    │   └── TransportError        no HTTP answer at all
    │       ├── ApiTimeout        connect/read/write/pool timeout
    │       └── ConnectionFailed  refused, reset or dropped connection
    └── PermanentApiError         other 4xx: retrying the same request cannot help

``maybe_committed`` says whether the server may have acted on the request before it
failed (a read timeout after the body was sent, a 5xx, a dropped response). Create
Course is not idempotent, so a retry of such a create must look for the course first.
"""

from __future__ import annotations


class ApiError(Exception):
    """A TagMango call that did not succeed."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        maybe_committed: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.maybe_committed = maybe_committed

    def as_dict(self) -> dict:
        return {
            "kind": type(self).__name__,
            "http_status": self.status,
            "error_code": self.error_code,
            "message": self.message,
        }


class TransientApiError(ApiError):
    retryable = True


class RateLimited(TransientApiError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, status=429, **kw)
        self.retry_after = retry_after


class ServerError(TransientApiError):
    pass


class TransportError(TransientApiError):
    pass


class ApiTimeout(TransportError):
    pass


class ConnectionFailed(TransportError):
    pass


class PermanentApiError(ApiError):
    pass
