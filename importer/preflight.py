"""Before anything is queued: is there a token for the target, and does TagMango accept it?

One cheap read (Get Courses, ``limit=1``), admitted by the same global rate limiter as the workers' calls.
A 401, or a 403 that refuses the account, is a configuration problem: one line, exit 3, nothing queued.
Transient trouble (429, 5xx, a timeout) is tried twice more and then left to the rows' own retries;
a connection that cannot be made at all is a connection problem (exit 3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from tasks import credentials, errors
from tasks.client import TagMangoClient

#: Attempts of the check when TagMango answers with a transient error (5xx, 429, read timeout).
ATTEMPTS = 3
#: A short timeout: the check must answer "within seconds".
TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=5.0, pool=5.0)


class Refused(Exception):
    """The check says: do not queue. The text is one line for the user and names no secret."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    note: str = ""  # why the check could not decide (then the rows go ahead and retry on their own)


def credential_for(host: str, api_url: str) -> credentials.Credential:
    """The token the workers will use for (host, api_url): ``TAGMANGO_CREDENTIALS_FILE`` or ``TAGMANGO_API_TOKEN``."""
    try:
        return credentials.resolve(host, api_url)
    except credentials.NoCredentials as exc:
        raise Refused(f"no API token to send to {host}: {exc}; export your TagMango API key (never pass it on "
                      "the command line), or use --sandbox") from None


def check(cred: credentials.Credential, store_redis: object | None = None, *, rate_limit: int = 117,
          rate_window: float = 10.0, transport: httpx.BaseTransport | None = None, pause_s: float = 0.5) -> Outcome:
    """Raise Refused when TagMango refuses the credential; otherwise say whether it was confirmed."""
    client = TagMangoClient(cred.api_url, cred.token, cred.host, timeout=TIMEOUT, transport=transport)
    limiter = None
    if store_redis is not None:
        from tasks.limiter import RateLimiter, credential_key

        limiter = (RateLimiter(store_redis, rate_limit, rate_window),
                   credential_key(cred.api_url, cred.host, cred.token))
    try:
        last: errors.ApiError | None = None
        for attempt in range(ATTEMPTS):
            if limiter is not None:
                limiter[0].acquire_now(limiter[1], max_wait=30.0)
            try:
                client.get_courses(page=1, limit=1)
                return Outcome(True)
            except errors.PermanentApiError as exc:
                if exc.status is None:  # a URL httpx cannot use
                    raise Refused(f"{exc.message}; check TAGMANGO_API_URL") from None
                if exc.status == 401:
                    raise Refused(f"TagMango refused the token for {cred.host} at {cred.api_url} (401 "
                                  f"{exc.message}); nothing was queued") from None
                if exc.status == 403:
                    cause = " ".join(f"403 {exc.error_code or ''} {exc.message}".split())
                    raise Refused(f"TagMango refused this account for {cred.host} ({cause}); "
                                  "nothing was queued") from None
                return Outcome(False, f"the credential check got {exc.status} {exc.error_code or ''}".strip())
            except (errors.ConnectionFailed, errors.ApiTimeout) as exc:
                if not exc.maybe_committed:  # nothing answered at all: wrong URL, TagMango down, no network
                    raise Refused(f"cannot reach TagMango at {cred.api_url}: {exc.message}") from None
                last = exc
            except errors.ApiError as exc:
                last = exc
                if isinstance(exc, errors.RateLimited):
                    time.sleep(min(exc.retry_after or 4 * pause_s, 10.0))
            time.sleep(pause_s * (attempt + 1))
        return Outcome(False, f"could not confirm the token ({last.message if last else 'no answer'}); "
                              "going ahead, rows retry on their own")
    finally:
        client.close()


def gate(cred: credentials.Credential, redis_client: object | None, *, quiet: bool = False) -> None:
    """``check`` for the command line: a refusal is one line on stderr and exit 3."""
    import click

    from importer.exitcodes import EXIT_CONFIG, CommandError
    from tasks.settings import Settings

    settings = Settings.from_env()
    try:
        outcome = check(cred, redis_client, rate_limit=settings.rate_limit, rate_window=settings.rate_window)
    except Refused as exc:
        raise CommandError(str(exc), EXIT_CONFIG) from None
    if not outcome.ok and not quiet:
        click.echo(f"warning: {outcome.note}", err=True)
