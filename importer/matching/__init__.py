"""Reading TagMango before an import or for a dry run (``importer.matching.reconcile``), from the command line.

Reads go through the credential's door (``tasks.gateway``), so the budget is shared with any import running
for the key; a progress line every few seconds shows the request rate, a wait for the limiter (a cool-down
after a 429) is said, and a 429 that our own count does not explain is reported once.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections.abc import Iterator

import click

from importer.exitcodes import EXIT_CONFIG, CommandError
from importer.ingest.plan import Plan
from importer.matching.live import LiveCatalog
from importer.matching.reconcile import Reconciled, reconcile
from tasks import errors
from tasks.gateway import Door
from tasks.ledger import Ledger
from tasks.rows import Row
from tasks.rowstore import RowStore

PROGRESS_EVERY_S = 3.0


class ReadProgress:
    """What a reading command prints: requests so far and their rate, waits, and a notice once."""

    def __init__(self, door: Door, quiet: bool) -> None:
        self.door, self.quiet = door, quiet
        self.started = self.shown = time.monotonic()
        self.noticed = False
        self.waited_shown = 0.0

    def _echo(self, text: str) -> None:
        if not self.quiet:
            click.echo(text, err=not sys.stdout.isatty())

    def reads(self, reads: int) -> None:
        now = time.monotonic()
        if now - self.shown >= PROGRESS_EVERY_S:
            self.shown = now
            rate = reads / max(now - self.started, 1e-6)
            self._echo(f"Reading TagMango: {reads} requests so far, {rate:.1f}/s (at most {self.door.limit} per "
                       f"{self.door.window:g} s)")

    def wait(self, seconds: float, why: str) -> None:
        """Said at most every few seconds: several threads may wait at once (the export reads 16 at a time)."""
        now = time.monotonic()
        if now - self.waited_shown >= PROGRESS_EVERY_S:
            self.waited_shown = now
            self._echo(f"Reading TagMango: waiting {max(seconds, 1):.0f} s ({why})")

    def notice(self, text: str) -> None:
        if not self.noticed:
            self.noticed = True
            self._echo(f"note: {text}")


@contextlib.contextmanager
def reads_answered(not_done: str) -> Iterator[None]:
    """TagMango refusing a read, or not answering the reads, as a CommandError (exit 3); ``not_done``: what was
    therefore not done ("nothing was enqueued")."""
    try:
        yield
    except errors.PermanentApiError as exc:
        raise CommandError(f"TagMango refused a read ({exc.status} {exc.error_code or ''} {exc.message}); "
                           f"nothing was {not_done}", EXIT_CONFIG) from None
    except errors.TransientApiError as exc:
        raise CommandError(f"TagMango did not answer the reads ({exc.status or type(exc).__name__}: "
                           f"{exc.message}); nothing was {not_done}, try again later", EXIT_CONFIG) from None


class Matching:
    """Matching one import against TagMango, a part of the plan at a time (``part``), with what the parts share:
    the catalog's listings, the ledger, the courses matched (``Reconciled.claimed``), the warnings."""

    def __init__(self, door: Door, store: RowStore, mode: str, *, quiet: bool = False) -> None:
        shown = ReadProgress(door, quiet)
        self.catalog = LiveCatalog(door, progress=shown.reads, on_wait=shown.wait, on_notice=shown.notice)
        self.host = door.cred.host
        self.ledger = Ledger(store.r, door.cred.api_url, door.cred.host)
        self.reconciled = Reconciled(mode)
        self.foreign: dict[str, int] = {}  # host -> course_ids of that host's export dropped
        self.to_send = self.settled = 0  # rows taken from ``matched_rows``

    def part(self, plan: Plan) -> None:
        """Reconcile the plan's rows (``reconcile``). A refusal or an outage is a CommandError (exit 3)."""
        drop_foreign_ids(plan.rows, self.host, self.foreign)
        with reads_answered("enqueued"):
            reconcile(plan, self.catalog, self.reconciled.mode, self.ledger, out=self.reconciled)

    def done(self) -> Reconciled:
        """What matching found, the foreign ids dropped said first."""
        note = foreign_note(self.foreign, self.host)
        if note:
            self.reconciled.warnings.insert(0, (None, note))
        return self.reconciled


def match_live(door: Door, store: RowStore, plan: Plan, mode: str, *, quiet: bool = False) -> Reconciled:
    """Reconcile the whole plan with TagMango (reads only; the dry run shows it whole). A refusal or an outage is a
    CommandError (exit 3)."""
    plan.build_deferred()
    matching = Matching(door, store, mode, quiet=quiet)
    matching.part(plan)
    return matching.done()


def matched_rows(matching: Matching, plan: Plan) -> Iterator[Row]:
    """Every row of the plan in input order, matched a chunk at a time as they are taken (``Plan.chunks``; in the
    plan's order within a chunk, as ``match_live`` would): a million plain rows are never held as a million rows.
    Matching's outcome: ``matching.done()`` once all are taken."""
    key, check_key = plan.order_key(), plan.check_key()
    for chunk in plan.chunks():
        unsent = [r for r in chunk if r.is_final]
        part = Plan(files=plan.files, rows=sorted((r for r in chunk if not r.is_final), key=check_key))
        matching.part(part)  # (may add rows: the deletes of replace mode)
        matching.to_send += len(part.rows)
        matching.settled += len(part.unsent) + len(unsent)
        yield from sorted(itertools.chain(part.rows, part.unsent, unsent), key=key)


def _source_host(row: Row) -> str:
    """The ``source_host`` cell of the row (an export names the host its ids belong to), normalised."""
    for header, value in (row.source or {}).items():
        if "".join(str(header).split()).replace("_", "").replace("-", "").casefold() == "sourcehost" and value:
            return str(value).strip().casefold()
    return ""


def drop_foreign_ids(rows: list[Row], host: str, dropped: dict[str, int]) -> None:
    """Ids of another host (an export of another account imported here): not sent, counted per host in
    ``dropped`` (said once, ``foreign_note``). The rows are matched as if the file had no ids (courses by title
    under their mangoes, created if missing)."""
    here = host.strip().casefold()
    for row in rows:
        source = _source_host(row)
        if source and source != here and row.ids.get("course_id"):
            row.ids.pop("course_id")
            dropped[source] = dropped.get(source, 0) + 1


def foreign_note(dropped: dict[str, int], host: str) -> str | None:
    if not dropped:
        return None
    where = ", ".join(f"{n} of {h}" for h, n in dropped.items())
    return (f"foreign ids: {sum(dropped.values())} course_id(s) of this file belong to another host ({where}, its "
            f"source_host column), not {host}: they are not sent; those courses are matched by title under their "
            "mangoes and created if missing (module_id and chapter_id are never sent: positions decide)")
