"""The one configuration of a command, read from the environment once at the command line's edge.

``importer.cli`` builds a ``Config`` before any command runs and hands it down; nothing under ``importer/`` reads
``os.environ`` after that (child processes get ``environ``, a copy taken here). The pipeline's knobs are
``tasks.settings.Settings`` (the workers read the same variables); tokens are ``tasks.credentials.Credentials``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from importer.exitcodes import EXIT_CONFIG, CommandError
from tasks.credentials import Credential, Credentials, NoCredentials
from tasks.settings import Settings
from tasks.settings import redis_url as configured_redis_url


@dataclass(frozen=True)
class Config:
    settings: Settings
    #: The Redis the user configured (``TAGMANGO_REDIS_URL``/``REDIS_URL``), or None: the embedded one.
    redis_url: str | None
    #: Where the embedded Redis, the sandbox's data and the logs live (``TAGMANGO_STATE_DIR``).
    state_dir: Path
    #: The creator's whitelabel host when ``--host`` is not given (``TAGMANGO_HOST``).
    host: str | None
    credentials: Credentials
    flower_auth: str | None = None
    dashboard_auth: str | None = None
    flower_url: str | None = None
    #: The environment this command was started with, for the processes it starts.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Config:
        settings = Settings.from_env(environ)
        return cls(settings=settings, redis_url=configured_redis_url(environ),
                   state_dir=Path(environ.get("TAGMANGO_STATE_DIR") or ".tagmango").resolve(),
                   host=environ.get("TAGMANGO_HOST") or None, credentials=Credentials.from_env(environ),
                   flower_auth=environ.get("TAGMANGO_FLOWER_BASIC_AUTH") or None,
                   dashboard_auth=environ.get("TAGMANGO_DASHBOARD_BASIC_AUTH") or None,
                   flower_url=environ.get("TAGMANGO_FLOWER_URL") or None, environ=dict(environ))

    @property
    def api_url(self) -> str:
        return self.settings.api_url

    @property
    def has_token(self) -> bool:
        """A token for the workers is configured (``TAGMANGO_API_TOKEN`` or ``TAGMANGO_CREDENTIALS_FILE``)."""
        return bool(self.credentials.token or self.environ.get("TAGMANGO_CREDENTIALS_FILE"))

    def credential(self, host: str, api_url: str) -> Credential:
        """The token the workers will use for (host, api_url), or a one-line command error."""
        try:
            return self.credentials.resolve(host, api_url)
        except NoCredentials as exc:
            raise CommandError(f"no API token to send to {host}: {exc}; export your TagMango API key (never pass "
                               "it on the command line), or use --sandbox", EXIT_CONFIG) from None
