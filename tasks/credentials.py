"""Where a process gets the API token for a job: its own environment, never the job or the message.

``TAGMANGO_API_TOKEN`` (with ``TAGMANGO_API_URL``) serves every host; ``TAGMANGO_CREDENTIALS_FILE`` names
a YAML/JSON file mapping whitelabel hosts to tokens, either ``host: token`` or
``host: {token: ..., api_url: ...}``, for agencies importing for several creators at once.
A job names only its host and API URL; a worker sends a job's rows only to an API URL it is configured
for, so a job enqueued against the sandbox can never be sent to production by a production worker.

``Credentials.from_env`` reads all of it once per process (the worker's edge); a file that cannot be read
does not stop the worker: every job that needs it is dead-lettered ``NO_CREDENTIALS`` with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tasks.settings import api_url as configured_api_url


class NoCredentials(Exception):
    """No token for the job's host and API URL. The text names no secret."""


@dataclass(frozen=True)
class Credential:
    api_url: str
    host: str
    token: str

    def __repr__(self) -> str:
        return f"Credential(api_url={self.api_url!r}, host={self.host!r}, token=***)"


def load_file(path: str) -> dict[str, dict]:
    """Parse a credentials file into host -> {token, api_url?}. Raises NoCredentials with a plain reason."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise NoCredentials(f"cannot read TAGMANGO_CREDENTIALS_FILE {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise NoCredentials(f"TAGMANGO_CREDENTIALS_FILE {path} must map hosts to tokens")
    out = {}
    for host, value in data.items():
        entry = value if isinstance(value, dict) else {"token": value}
        if not isinstance(entry.get("token"), str) or not entry["token"]:
            raise NoCredentials(f"TAGMANGO_CREDENTIALS_FILE {path}: host {host} has no token")
        out[str(host).lower()] = entry
    return out


@dataclass(frozen=True)
class Credentials:
    """The tokens this process may use, by whitelabel host."""

    api_url: str
    token: str | None = None
    by_host: dict[str, dict] = field(default_factory=dict)
    #: Why the credentials file could not be used, if it could not.
    file_problem: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        by_host, problem = {}, None
        path = environ.get("TAGMANGO_CREDENTIALS_FILE")
        if path:
            try:
                by_host = load_file(path)
            except NoCredentials as exc:
                problem = str(exc)
        return cls(api_url=configured_api_url(environ), token=environ.get("TAGMANGO_API_TOKEN") or None,
                   by_host=by_host, file_problem=problem)

    def resolve(self, host: str, api_url: str) -> Credential:
        """The credential for (host, api_url), or NoCredentials saying what is missing."""
        host, api_url = host.lower(), api_url.rstrip("/")
        if self.file_problem:
            raise NoCredentials(self.file_problem)
        entry = self.by_host.get(host)
        if entry is not None:
            entry_url = str(entry.get("api_url") or self.api_url).rstrip("/")
            if entry_url != api_url:
                raise NoCredentials(f"the credentials for {host} are for {entry_url}, the job targets {api_url}")
            return Credential(api_url, host, entry["token"])
        if not self.token:
            raise NoCredentials(f"no API token for {host} (set TAGMANGO_API_TOKEN or TAGMANGO_CREDENTIALS_FILE)")
        if self.api_url != api_url:
            raise NoCredentials(f"configured for {self.api_url}, the job targets {api_url} (set TAGMANGO_API_URL)")
        return Credential(api_url, host, self.token)


def resolve(host: str, api_url: str) -> Credential:
    """One-off lookup from this process's environment (the command line); workers keep a ``Credentials``."""
    return Credentials.from_env().resolve(host, api_url)
