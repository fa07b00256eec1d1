"""``status``, ``jobs``, ``dead`` and ``report``: what Redis knows of a job, and its results file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from importer.commands.run import check_duplicates
from importer.config import Config
from importer.exitcodes import EXIT_OK, CommandError
from importer.local.session import Session
from importer.report.follow import exit_code, follow, snapshot
from importer.report.results import default_path, write_results
from importer.report.tables import write_table
from tasks import operations
from tasks.requeue import select_dead
from tasks.rowstore import RowStore, iso


def status(config: Config, job: str | None, watch: bool, as_json: bool) -> int:
    session = Session(config)
    try:
        job_id = session.job_id(job)
        if watch:
            follow(session.store, job_id, config.settings, quiet=as_json)
        meta = session.store.job(job_id)
        if session.store.is_final(job_id) and not meta.duplicates_checked and not meta.sandbox:
            try:  # a job whose command did not follow it to the end (run --no-wait): look now
                door = session.door(config.credential(meta.host, meta.api_url))
                check_duplicates(session.store, job_id, door, quiet=as_json)
            except CommandError as exc:
                if not as_json:
                    click.echo(f"note: not looking for duplicates in TagMango: {exc.message}", err=True)
        snap = snapshot(session.store, job_id)
        if as_json:
            click.echo(json.dumps(snap, indent=2))
        else:
            meta = session.store.job(job_id)
            click.echo(f"{job_id}  {meta.label}  host {meta.host}  api {meta.api_url}")
            click.echo("  " + "  ".join(f"{k} {v}" for k, v in snap["counts"].items()) +
                       ("  (final)" if snap["final"] else ""))
            if meta.blocked:
                first = meta.blocked.failure
                click.echo(f"  blocked: {first.code or first.http_status} {first.message}")
            for text in snap["notices"].values():
                click.echo(f"  note: {text}")
            for d in snap["duplicates"]:
                click.echo(f"  DUPLICATE_IN_TAGMANGO {d['sheet']} row {d['line']}: {d['message']}")
        return exit_code(snap) if snap["final"] else EXIT_OK
    finally:
        session.close()


def jobs(config: Config, limit: int) -> int:
    session = Session(config)
    try:
        for job_id in session.store.jobs(limit):
            meta, snap = session.store.job(job_id), snapshot(session.store, job_id)
            c = snap["counts"]
            click.echo(f"{job_id}  {iso(meta.created_at)}  {meta.label}  {meta.host}  total {snap['total']}  "
                       f"ok {c['succeeded']} skipped {c['skipped']} dead {c['dead']} invalid {c['invalid']}  "
                       f"{'final' if snap['final'] else 'running'}")
        return EXIT_OK
    finally:
        session.close()


DEAD_COLUMNS = ["sheet", "row", "key", "title", "http_status", "error_code", "message", "attempts", "request_path",
                "request_body"]


def dead_rows(store: RowStore, job_id: str, error_code: str | None, http_status: int | None) -> list[dict]:
    out = []
    for row in select_dead(store, job_id, error_code=error_code, http_status=http_status, everything=True):
        error = row.error
        out.append({"sheet": row.sheet, "row": row.row, "key": row.key, "title": row.title,
                    "http_status": error.http_status if error else None, "error_code": error.code if error else None,
                    "message": error.message if error else None, "attempts": row.attempts,
                    "request_path": operations.get(row.op).request_path(row),
                    "request_body": json.dumps(row.body, ensure_ascii=False)})
    return out


def dead(config: Config, job: str | None, error_code: str | None, http_status: int | None, export: str | None,
         as_json: bool) -> int:
    session = Session(config)
    try:
        job_id = session.job_id(job)
        rows = dead_rows(session.store, job_id, error_code, http_status)
        if export:
            write_table(export, DEAD_COLUMNS, rows)
            click.echo(f"{len(rows)} dead letter(s) written to {export}")
        elif as_json:
            click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        else:
            for r in rows:
                click.echo(f"{r['sheet']} row {r['row']}  {r['error_code'] or ''} {r['http_status'] or ''}  "
                           f"{r['message']}\n    {r['request_path']} {r['request_body']}")
            click.echo(f"{len(rows)} dead letter(s) in {job_id}")
        return EXIT_OK
    finally:
        session.close()


def report(config: Config, job: str | None, output: str | None) -> int:
    session = Session(config)
    try:
        job_id = session.job_id(job)
        path = Path(output) if output else default_path(session.store.job(job_id))
        write_results(session.store, job_id, path)
        click.echo(f"Results of {job_id} written to {path}")
        return EXIT_OK
    finally:
        session.close()
