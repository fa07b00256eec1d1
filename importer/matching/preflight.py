"""Before anything is queued: is there a token for the target, and does TagMango accept it?

One cheap read (Get Courses, ``limit=1``) through the credential's door (``tasks.gateway``): the same rate
limit as the workers' calls, a 429 waited out. A 401, or a 403 that refuses the account, is a configuration
problem: one line, exit 3, nothing queued. Transient trouble (429, 5xx, a timeout) is tried twice more and then
left to the rows' own retries; a connection that cannot be made at all is a connection problem (exit 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tasks import credentials, errors
from tasks.gateway import Door, OnNotice, OnWait

#: Attempts of the check when TagMango answers with a transient error (5xx, 429, read timeout).
ATTEMPTS = 3
#: A short timeout: the check must answer "within seconds".
TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=5.0, pool=5.0)


class Refused(Exception):
    """The check says: do not queue. The text is one line for the user and names no secret."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    note: str = ""  # why the check could not decide (then the rows go ahead and retry on their own)


def credential_for(host: str, api_url: str) -> credentials.Credential:
    """The token the workers will use for (host, api_url): ``TAGMANGO_CREDENTIALS_FILE`` or ``TAGMANGO_API_TOKEN``."""
    try:
        return credentials.resolve(host, api_url)
    except credentials.NoCredentials as exc:
        raise Refused(f"no API token to send to {host}: {exc}; export your TagMango API key (never pass it on "
                      "the command line), or use --sandbox") from None


def check(door: Door, *, on_wait: OnWait | None = None, on_notice: OnNotice | None = None) -> Verdict:
    """Raise Refused when TagMango refuses the door's credential; otherwise say whether it was confirmed."""
    cred = door.cred
    try:
        door.read(lambda api: api.get_courses(page=1, limit=1, timeout=TIMEOUT), attempts=ATTEMPTS, on_wait=on_wait,
                  on_notice=on_notice)
        return Verdict(True)
    except errors.PermanentApiError as exc:
        if exc.status is None:  # a URL httpx cannot use
            raise Refused(f"{exc.message}; check TAGMANGO_API_URL") from None
        if exc.status == 401:
            raise Refused(f"TagMango refused the token for {cred.host} at {cred.api_url} (401 "
                          f"{exc.message}); nothing was queued") from None
        if exc.status == 403:
            cause = " ".join(f"403 {exc.error_code or ''} {exc.message}".split())
            raise Refused(f"TagMango refused this account for {cred.host} ({cause}); nothing was queued") from None
        return Verdict(False, f"the credential check got {exc.status} {exc.error_code or ''}".strip())
    except (errors.ConnectionFailed, errors.ApiTimeout) as exc:
        if not exc.maybe_committed:  # nothing answered at all: wrong URL, TagMango down, no network
            raise Refused(f"cannot reach TagMango at {cred.api_url}: {exc.message}") from None
        return _unconfirmed(exc)
    except errors.ApiError as exc:
        return _unconfirmed(exc)


def _unconfirmed(exc: errors.ApiError) -> Verdict:
    return Verdict(False, f"could not confirm the token ({exc.message}); going ahead, rows retry on their own")


def gate(door: Door, *, quiet: bool = False) -> None:
    """``check`` for the command line: a refusal is one line on stderr and exit 3; waits are said."""
    import click

    from importer.exitcodes import EXIT_CONFIG, CommandError

    def said(seconds: float, why: str) -> None:
        if not quiet:
            click.echo(f"Checking the token: waiting {seconds:.0f} s ({why})", err=True)

    def noticed(text: str) -> None:
        if not quiet:
            click.echo(f"note: {text}", err=True)

    try:
        verdict = check(door, on_wait=said, on_notice=noticed)
    except Refused as exc:
        raise CommandError(str(exc), EXIT_CONFIG) from None
    if not verdict.ok and not quiet:
        click.echo(f"warning: {verdict.note}", err=True)
