"""Reading TagMango before an import or for a dry run (``importer.reconcile``), from the command line.

Reads go through the same Redis rate limiter as the workers' calls (the credential's budget is shared with
any import running for it), with a progress line every few seconds.
"""

from __future__ import annotations

import sys
import time

import click
import httpx

from importer.exitcodes import EXIT_CONFIG, CommandError
from importer.live import LiveCatalog
from importer.plan import Plan
from importer.reconcile import Reconciled, reconcile
from tasks import errors
from tasks.client import TagMangoClient
from tasks.credentials import Credential
from tasks.ledger import Ledger
from tasks.limiter import RateLimiter, credential_key
from tasks.rowstore import RowStore
from tasks.settings import Settings

PROGRESS_EVERY_S = 3.0


def match_live(store: RowStore, cred: Credential, plan: Plan, mode: str, *, quiet: bool = False) -> Reconciled:
    """Reconcile the plan with TagMango (reads only). A refusal or an outage is a CommandError (exit 3)."""
    settings = Settings.from_env()
    limiter = RateLimiter(store.r, settings.rate_limit, settings.rate_window)
    key = credential_key(cred.api_url, cred.host, cred.token)
    timeout = httpx.Timeout(connect=5.0, read=settings.http_read_timeout, write=10.0, pool=10.0)
    client = TagMangoClient(cred.api_url, cred.token, cred.host, timeout=timeout)
    shown = [time.monotonic()]

    def progress(reads: int) -> None:
        if not quiet and time.monotonic() - shown[0] >= PROGRESS_EVERY_S:
            shown[0] = time.monotonic()
            click.echo(f"Reading TagMango: {reads} requests so far (at most {limiter.limit} per "
                       f"{settings.rate_window:g} s)", err=not sys.stdout.isatty())

    catalog = LiveCatalog(client, lambda: limiter.acquire_now(key), progress=progress,
                          on_rate_limited=lambda seconds: limiter.cool_down(key, seconds))
    try:
        outcome = reconcile(plan, catalog, mode, Ledger(store.r, cred.api_url, cred.host))
    except errors.PermanentApiError as exc:
        raise CommandError(f"TagMango refused a read ({exc.status} {exc.error_code or ''} {exc.message}); nothing "
                           "was enqueued", EXIT_CONFIG) from None
    except errors.TransientApiError as exc:
        raise CommandError(f"TagMango did not answer the reads ({exc.status or type(exc).__name__}: {exc.message}); "
                           "nothing was enqueued, try again later", EXIT_CONFIG) from None
    finally:
        client.close()
    return outcome
