"""The one configuration of a command, read from the environment once at the command line's edge.

``importer.cli`` builds a ``Config`` before any command runs and hands it down; nothing under ``importer/`` reads
``os.environ`` after that (child processes get ``environ``, a copy taken here). The pipeline's knobs are
``tasks.settings.Settings`` (the workers read the same variables); tokens are ``tasks.credentials.Credentials``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
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
    #: How the user ran the command line, for the commands it suggests (``invoked_as``).
    program: str = "tagmango-import"
    #: The command being run (``run``, ``dashboard``, ...), as the state folder's registry names it.
    command: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, *, program: str = "tagmango-import",
                 command: str | None = None) -> Config:
        settings = Settings.from_env(environ)
        return cls(settings=settings, redis_url=configured_redis_url(environ),
                   state_dir=Path(environ.get("TAGMANGO_STATE_DIR") or ".tagmango").resolve(),
                   host=environ.get("TAGMANGO_HOST") or None, credentials=Credentials.from_env(environ),
                   flower_auth=environ.get("TAGMANGO_FLOWER_BASIC_AUTH") or None,
                   dashboard_auth=environ.get("TAGMANGO_DASHBOARD_BASIC_AUTH") or None,
                   flower_url=environ.get("TAGMANGO_FLOWER_URL") or None, environ=dict(environ), program=program,
                   command=command)

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


def invoked_as(argv0: str | None = None, executable: str | None = None, main_module: str | None = None,
               environ: Mapping[str, str] = os.environ) -> str:
    """The command line as the user typed it, for hints: ``tagmango-import`` when that is what PATH finds,
    the script's path as typed otherwise (``.venv/bin/tagmango-import``), ``python3 -m importer`` (with the
    interpreter's path unless PATH finds that one) when run as a module."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    if main_module is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        main_module = spec.name if spec is not None else ""
    path = environ.get("PATH", os.defpath)
    if main_module in ("importer.__main__", "importer") or argv0.endswith(os.path.join("importer", "__main__.py")):
        return f"{_as_typed(executable, path)} -m importer"
    if not argv0 or argv0 == "-c":
        return "tagmango-import"
    return _as_typed(argv0, path)


def _as_typed(program: str, path: str) -> str:
    """``program`` by its name when PATH finds this very file under it, else its path (relative to the working
    folder when inside it), quoted for a shell."""
    name = os.path.basename(program)
    found = shutil.which(name, path=path)
    try:
        if found and os.path.samefile(found, program):
            return shlex.quote(name)
    except OSError:
        pass
    if os.sep not in program:
        return shlex.quote(program)
    if os.path.isabs(program):
        try:
            relative = os.path.relpath(program)
            if not relative.startswith(os.pardir):
                program = relative if os.sep in relative else f".{os.sep}{relative}"
        except ValueError:
            pass
    return shlex.quote(program)
