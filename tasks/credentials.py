"""Where a worker gets the API token for a job: its own environment, never the job or the message.

``TAGMANGO_API_TOKEN`` (with ``TAGMANGO_API_URL``) serves every host; ``TAGMANGO_CREDENTIALS_FILE`` names
a YAML/JSON file mapping whitelabel hosts to tokens, either ``host: token`` or
``host: {token: ..., api_url: ...}``, for agencies importing for several creators at once.
A job names only its host and API URL; a worker sends a job's rows only to an API URL it is configured
for, so a job enqueued against the sandbox can never be sent to production by a production worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tasks.client import DEFAULT_API_URL


class NoCredentials(Exception):
    """This worker has no token for the job's host and API URL. The text names no secret."""


@dataclass(frozen=True)
class Credential:
    api_url: str
    host: str
    token: str

    def __repr__(self) -> str:
        return f"Credential(api_url={self.api_url!r}, host={self.host!r}, token=***)"


def _load_file(path: str) -> dict[str, dict]:
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


def configured_api_url() -> str:
    return (os.environ.get("TAGMANGO_API_URL") or DEFAULT_API_URL).rstrip("/")


def resolve(host: str, api_url: str) -> Credential:
    """The credential for (host, api_url) from this process's environment, or NoCredentials."""
    host, api_url = host.lower(), api_url.rstrip("/")
    path = os.environ.get("TAGMANGO_CREDENTIALS_FILE")
    if path:
        entry = _load_file(path).get(host)
        if entry is not None:
            entry_url = str(entry.get("api_url") or configured_api_url()).rstrip("/")
            if entry_url != api_url:
                raise NoCredentials(f"this worker's credentials for {host} are for {entry_url}, the job targets "
                                    f"{api_url}")
            return Credential(api_url, host, entry["token"])
    token = os.environ.get("TAGMANGO_API_TOKEN")
    if not token:
        raise NoCredentials(f"this worker has no API token for {host} (set TAGMANGO_API_TOKEN or "
                            "TAGMANGO_CREDENTIALS_FILE)")
    if configured_api_url() != api_url:
        raise NoCredentials(f"this worker is configured for {configured_api_url()}, the job targets {api_url} "
                            "(set TAGMANGO_API_URL)")
    return Credential(api_url, host, token)
