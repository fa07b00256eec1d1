"""What a command works with: Redis (configured, or the embedded one started here), what it starts on this
machine (``importer.local.stack``), and the one door to TagMango per credential (``tasks.gateway``).

``target``/``credential_for`` decide where rows go: the sandbox (started if needed, with its own token) or a
real creator's host with the token the workers will use.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

from importer.config import Config
from importer.exitcodes import CommandError
from importer.local.stack import SANDBOX_HOST, LocalStack
from tasks.credentials import Credential
from tasks.gateway import Door, Gateway
from tasks.job import Job
from tasks.rowstore import RowStore


class Session:
    """Redis (configured or embedded) plus whatever this command had to start; stops it at the end."""

    def __init__(self, config: Config, keep_running: bool = False) -> None:
        self.config = config
        self.keep_running = keep_running
        self.stack = LocalStack(config)
        self.url = config.redis_url
        self.embedded = self.url is None
        if self.embedded:
            try:
                self.url = self.stack.start_redis()
            except RuntimeError as exc:
                raise CommandError(str(exc)) from None
        self.store = RowStore.from_url(self.url, config.settings.dead_letter_days)
        try:
            self.store.r.ping()
        except redis.RedisError as exc:
            raise CommandError(f"cannot reach Redis at {safe_url(self.url)}: {exc}") from None
        self._gateway: Gateway | None = None

    def door(self, cred: Credential) -> Door:
        """The one door to TagMango for a credential (tasks.gateway): the workers' limiter, shared."""
        if self._gateway is None:
            self._gateway = Gateway.from_settings(self.store.r, self.config.settings)
        return self._gateway.door(cred)

    def job_id(self, job: str | None) -> str:
        job_id = job if job and job != "latest" else self.store.latest_job()
        if not job_id or self.store.job(job_id) is None:
            raise CommandError(f"no such job: {job}" if job else "no jobs yet")
        return job_id

    # -- where rows go ---------------------------------------------------------------------------
    def target(self, sandbox: bool, host: str | None) -> Credential:
        """The credential an import or a dry run goes to: the sandbox (started if needed), or ``--host``/
        ``TAGMANGO_HOST`` with the token the workers will use (TAGMANGO_CREDENTIALS_FILE or TAGMANGO_API_TOKEN)."""
        if sandbox:
            token = self.stack.sandbox_token()
            return Credential(self.stack.start_sandbox(token), host or self.config.host or SANDBOX_HOST, token)
        return real_target(self.config, host)

    def credential_for(self, job: Job) -> Credential:
        """The token the job's rows will be sent with (the sandbox's own for a sandbox job, started if needed)."""
        if job.sandbox:
            token = self.stack.sandbox_token()
            api_url = self.stack.start_sandbox(token) if self.embedded else job.api_url
            if api_url != job.api_url:
                raise CommandError(f"the sandbox of this job ran at {job.api_url}, it is now at {api_url}")
            return Credential(api_url, job.host, token)
        return self.config.credential(job.host, job.api_url)

    def start_workers_for(self, job: Job) -> None:
        """In embedded mode, a worker (and the sandbox, for a sandbox job) to process the job."""
        if not self.embedded:
            return
        cred = self.credential_for(job)
        self.stack.start_worker(self.url, cred.api_url, cred.token)

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()
        self.stack.stop(self.keep_running)


def real_target(config: Config, host: str | None) -> Credential:
    """A real creator's host and the workers' token for it; a missing token or host is a one-line error (checked
    before anything is started)."""
    host = host or config.host
    if not host:
        if not config.has_token:
            raise CommandError("TAGMANGO_API_TOKEN is not set: export your TagMango API key (never pass it on the command "
                       "line), or use --sandbox")
        raise CommandError("which creator? set TAGMANGO_HOST or --host to the whitelabel host, e.g. yourname.tagmango.com")
    return config.credential(host, config.api_url)


def safe_url(url: str) -> str:
    """A Redis URL without its password, for messages."""
    parts = urlsplit(url)
    return url.replace(parts.password, "***") if parts.password else url
