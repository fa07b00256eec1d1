"""The ``tagmango-import`` command line. Thin: each command parses options and calls one module."""

from __future__ import annotations

import sys

import click

from importer import __version__
from importer.exitcodes import EXIT_CONFIG, EXIT_INTERRUPTED, CommandError
from tasks.defaults import DEFAULT_WORKER_CONCURRENCY
from tasks.job import MODES


class Group(click.Group):
    """Turns a command's error, a bad setting or a Ctrl-C into a one-line message and an exit code."""

    #: Commands defined beside what they run, loaded only when asked for.
    LAZY = {"sandbox": "importer.sandbox.command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            import importlib

            return getattr(importlib.import_module(self.LAZY[name]), name)
        return super().get_command(ctx, name)

    def main(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        from tasks.settings import ConfigError

        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except CommandError as exc:
            click.echo(f"error: {exc.message}", err=True)
            return exc.exit_code
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            return EXIT_CONFIG
        except click.exceptions.Exit as exc:
            return exc.exit_code
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except click.exceptions.Abort:
            click.echo("Interrupted.", err=True)
            return EXIT_INTERRUPTED
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            return EXIT_INTERRUPTED


@click.group(cls=Group)
@click.version_option(__version__, prog_name="tagmango-import")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Import course catalogs from spreadsheets into TagMango."""
    from importer.config import Config, invoked_as

    # The one reading of the environment; commands get it with @pass_config.
    ctx.obj = Config.from_env(program=invoked_as(), command=ctx.invoked_subcommand)


pass_config = click.make_pass_decorator(object)


def parse_rows(text: str | None) -> set[int] | None:
    """``--rows 12,15-18`` as spreadsheet row numbers."""
    if not text:
        return None
    rows: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            rows.update(range(int(low), int(high or low) + 1))
        except ValueError:
            raise click.BadParameter(f"{part!r}: use numbers and ranges like 12,15-18", param_hint="--rows") from None
    return rows


def input_options(func):  # noqa: ANN201
    """--mapping and --set, shared by validate, run and requeue --from."""
    func = click.option("--set", "sets", multiple=True, metavar="COLUMN=VALUE",
                        help="Constant for a column the file lacks, e.g. mangoes=66c4964c11e7fef26751f3a7.")(func)
    return click.option("--mapping", type=click.Path(dir_okay=False), default=None,
                        help="YAML/JSON file mapping your headers to our columns.")(func)


def mode_option(func):  # noqa: ANN201
    return click.option("--mode", type=click.Choice(MODES), default=None,
                        help="create (default): create what TagMango lacks; merge: also update what changed; "
                             "update: only update; replace: merge, then delete lessons the file no longer has.")(func)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@input_options
@mode_option
@click.option("--sandbox", is_flag=True, help="With --mode: compare with the local sandbox.")
@click.option("--host", default=None, help="With --mode: whitelabel host of the creator (default: TAGMANGO_HOST).")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="Write all problems (with --mode: every row's change) to .csv/.xlsx.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary and problems as JSON.")
@pass_config
def validate(config, files, mapping, sets, mode, sandbox, host, report, as_json) -> None:
    """Check FILES (CSV/Excel) and show the import plan, sending nothing. With --mode, also read TagMango and
    show per course what would be created, updated, deleted and left alone."""
    from importer.commands.validate import parse_options, run_validate

    options = parse_options(mapping, sets)
    if mode:
        from importer.commands.run import compare

        sys.exit(compare(config, files, options, mode=mode, sandbox=sandbox, host=host, report=report,
                         as_json=as_json))
    sys.exit(run_validate(files, options, report, as_json))


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@input_options
@click.option("--sandbox", is_flag=True, help="Start the local sandbox (mild faults on) and import into it.")
@click.option("--host", default=None, help="Whitelabel host of the creator (default: TAGMANGO_HOST).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the job until every row is final.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows; record invalid ones as such.")
@click.option("--dry-run", is_flag=True, help="Validate and compare with TagMango (reads only); write nothing.")
@mode_option
@click.option("--keep-running", is_flag=True, help="Leave the embedded Redis, worker and sandbox running.")
@click.option("--flower", is_flag=True, help="Start Flower (embedded mode) before the first row is queued.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary instead of progress.")
@click.option("--results", type=click.Path(dir_okay=False), default=None,
              help="Results file (default: <input>.results.xlsx|.csv next to the input).")
@pass_config
def run(config, files, mapping, sets, sandbox, host, wait, skip_invalid, dry_run, mode, keep_running,
        flower, as_json, results) -> None:
    """Validate FILES and import them: enqueue one task per row and follow the job."""
    from importer.commands import run as command
    from importer.commands.validate import parse_options

    sys.exit(command.run(config, files, parse_options(mapping, sets), sandbox=sandbox, host=host, wait=wait,
                     skip_invalid=skip_invalid, dry_run=dry_run, keep_running=keep_running, as_json=as_json,
                     results=results, flower=flower, mode=mode or "create"))


@cli.command()
@click.argument("job", required=False)
@click.option("--watch", is_flag=True, help="Follow until the job is final.")
@click.option("--json", "as_json", is_flag=True)
@pass_config
def status(config, job, watch, as_json) -> None:
    """Progress of JOB (default: the latest job)."""
    from importer.commands import inspect

    sys.exit(inspect.status(config, job, watch, as_json))


@cli.command()
@click.option("--limit", default=20, show_default=True)
@pass_config
def jobs(config, limit) -> None:
    """Recent jobs."""
    from importer.commands import inspect

    sys.exit(inspect.jobs(config, limit))


@cli.command()
@click.argument("job", required=False)
@click.option("--error-code", default=None, help="Only this errorCode (e.g. CHAPTER_NOT_FOUND).")
@click.option("--status", "http_status", type=int, default=None, help="Only this HTTP status.")
@click.option("--export", type=click.Path(dir_okay=False), default=None, help="Write them to .csv/.xlsx.")
@click.option("--json", "as_json", is_flag=True)
@pass_config
def dead(config, job, error_code, http_status, export, as_json) -> None:
    """List or export the dead letters of JOB: row, error, message and the exact request body."""
    from importer.commands import inspect

    sys.exit(inspect.dead(config, job, error_code, http_status, export, as_json))


@cli.command()
@click.argument("job", required=False)
@click.option("--all", "everything", is_flag=True, help="Every dead row.")
@click.option("--error-code", default=None, help="Dead rows with this error code.")
@click.option("--rows", default=None, help="Spreadsheet rows, e.g. 12,15-18.")
@click.option("--from", "from_files", multiple=True, type=click.Path(),
              help="A corrected file (the results file or the original, edited): its rows replace the dead ones.")
@input_options
@mode_option
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--results", type=click.Path(dir_okay=False), default=None)
@pass_config
def requeue(config, job, everything, error_code, rows, from_files, mapping, sets, mode, wait, as_json,
            results) -> None:
    """Send dead rows of JOB again (through the same duplicate checks as a first run)."""
    from importer.commands import requeue as command
    from importer.commands.validate import parse_options

    sys.exit(command.requeue(config, job, everything=everything, error_code=error_code, rows=parse_rows(rows),
                             from_files=from_files, options=parse_options(mapping, sets), wait=wait, as_json=as_json,
                             results=results, mode=mode))


@cli.command()
@click.argument("job", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="results.xlsx or .csv")
@pass_config
def report(config, job, output) -> None:
    """Write the per-row results file of JOB."""
    from importer.commands import inspect

    sys.exit(inspect.report(config, job, output))


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="catalog.xlsx or .csv")
@click.option("--mangoes", multiple=True, metavar="ID,...", help="Only the courses under these mangoes.")
@click.option("--course-id", "course_ids", multiple=True, metavar="ID", help="Only this course (repeatable).")
@click.option("--sandbox", is_flag=True, help="Export from the local sandbox.")
@click.option("--host", default=None, help="Whitelabel host of the creator (default: TAGMANGO_HOST).")
@pass_config
def export(config, output, mangoes, course_ids, sandbox, host) -> None:
    """Write the host's courses, modules and lessons, in order, as the curriculum workbook `run` reads."""
    from importer.commands import export as command

    sys.exit(command.export(config, output, mangoes=mangoes, course_ids=course_ids, sandbox=sandbox, host=host))


@cli.command()
@click.argument("job", required=False)
@click.option("--dry-run", is_flag=True, help="Show what would be put back, deleted and left; write nothing.")
@click.option("--force", is_flag=True, help="Put the old values back even where they changed since the job.")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--results", type=click.Path(dir_okay=False), default=None)
@pass_config
def undo(config, job, dry_run, force, wait, as_json, results) -> None:
    """Put back every value JOB changed (from its snapshot), delete the lessons it created, and list what TagMango
    cannot undo. Refuses (exit 4) when a value changed since the job, unless --force."""
    from importer.commands import undo as command

    sys.exit(command.undo(config, job, dry_run=dry_run, force=force, wait=wait, as_json=as_json, results=results))


REMOTE_HELP = "Allow an --address other machines can reach (plain HTTP with basic auth: a warning is printed)."


@cli.command()
@click.option("--port", default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--allow-remote", is_flag=True, help=REMOTE_HELP)
@pass_config
def flower(config, port, address, allow_remote) -> None:
    """Start Flower on the importer's Redis, with basic auth (TAGMANGO_FLOWER_BASIC_AUTH)."""
    from importer.commands import services

    sys.exit(services.flower(config, port, address, allow_remote))


@cli.command()
@click.option("--port", default=8765, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--flower-url", default=None, help="Flower's address for the links (default: the one `run --flower` "
              "or `flower` started, or TAGMANGO_FLOWER_URL).")
@click.option("--allow-remote", is_flag=True, help=REMOTE_HELP)
@pass_config
def dashboard(config, port, address, flower_url, allow_remote) -> None:
    """A web page per import (progress, request rate, dead letters, requeue), basic auth
    (TAGMANGO_DASHBOARD_BASIC_AUTH)."""
    from importer.dashboard.server import serve

    sys.exit(serve(config, port, address, flower_url, allow_remote))


@cli.command()
@pass_config
def stop(config) -> None:
    """Stop every process this state folder started: dashboards, Flower, the worker, the sandbox, Redis (and
    commands using them, as with Ctrl-C)."""
    from importer.local.stop import stop_all

    lines = stop_all(config.state_dir)
    for line in lines or ["nothing was running from " + str(config.state_dir)]:
        click.echo(line)
    sys.exit(0)


@cli.command()
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Rows in flight per worker (threads); default TAGMANGO_WORKER_CONCURRENCY, else "
                   f"{DEFAULT_WORKER_CONCURRENCY}.")
@click.option("--loglevel", default="WARNING", show_default=True,
              help="INFO also logs every task received and finished (costs CPU on big imports).")
@pass_config
def worker(config, concurrency, loglevel) -> None:
    """Run a Celery worker for the import queue (threads pool, events on)."""
    from importer.commands import services

    sys.exit(services.worker(config, concurrency, loglevel))


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a container stopping, a CI timeout) ends a command the way Ctrl-C does: the job keeps its
    state for a rerun and a stack the command started is shut down, instead of orphaned."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    import signal

    from importer.config import invoked_as

    # Ctrl-C and `stop` interrupt a command with SIGINT: also when it was started in the background of a script,
    # which makes it inherit SIGINT ignored. SIGTERM ends it the same way. (The worker command's Celery installs
    # its own handlers over both.)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    return cli.main(args=argv, prog_name=invoked_as()) or 0
