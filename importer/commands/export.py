"""``export -o catalog.xlsx|.csv [--mangoes ID,...] [--course-id ID ...]``: the host's courses as the curriculum
workbook ``run`` reads (importer.matching.export), read through the gateway with a progress line."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from importer.config import Config
from importer.exitcodes import EXIT_INVALID_INPUT, EXIT_OK, CommandError
from importer.local.session import Session, real_target
from importer.matching import ReadProgress, reads_answered
from importer.matching.export import CURRICULUM_COLUMNS, NotFound, read_catalog
from importer.matching.live import LiveCatalog
from importer.matching.preflight import gate
from importer.report.tables import write_sheets, write_table


def export(config: Config, output: str, *, mangoes: tuple[str, ...], course_ids: tuple[str, ...], sandbox: bool,
           host: str | None) -> int:
    path = Path(output)
    if path.suffix.lower() not in (".xlsx", ".csv"):
        raise CommandError(f"{path.name}: write the export as .xlsx or .csv", EXIT_INVALID_INPUT)
    wanted_mangoes = [m.strip() for text in mangoes for m in text.replace(";", ",").split(",") if m.strip()]
    wanted_courses = [c.strip() for text in course_ids for c in text.split(",") if c.strip()]
    cred = None if sandbox else real_target(config, host)
    session = Session(config)
    try:
        door = session.door(cred or session.target(sandbox, host))
        gate(door)
        shown = ReadProgress(door, quiet=False)
        shown.started = started = time.monotonic()
        catalog = LiveCatalog(door, progress=shown.reads, on_wait=shown.wait, on_notice=shown.notice)
        out = sys.stderr if not sys.stdout.isatty() else sys.stdout

        def level(what: str, count: int) -> None:
            click.echo(f"Reading {count} {what} of {door.cred.host}…", file=out)

        try:
            with reads_answered("written"):
                exported = read_catalog(catalog, mangoes=wanted_mangoes, course_ids=wanted_courses, on_level=level)
        except NotFound as exc:
            raise CommandError(str(exc), EXIT_INVALID_INPUT) from None
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
        try:
            if path.suffix.lower() == ".xlsx":
                write_sheets(tmp, exported.sheets())
            else:
                write_table(tmp, [*CURRICULUM_COLUMNS, *exported.read_only], exported.table())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        elapsed = time.monotonic() - started
        click.echo(f"Exported {exported.courses} course(s), {exported.modules} module(s), {exported.chapters} "
                   f"lesson(s) of {door.cred.host} to {path} ({catalog.reads} requests in {elapsed:.1f} s)")
        return EXIT_OK
    finally:
        session.close()
