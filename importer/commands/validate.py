"""``tagmango-import validate``: the dry run. Prints the plan summary and every problem found."""

from __future__ import annotations

import json
from pathlib import Path

import click

from importer.exitcodes import EXIT_INVALID_INPUT, EXIT_OK, CommandError
from importer.ingest.plan import Plan
from importer.ingest.problems import PROBLEM_COLUMNS, InputError, Problem
from importer.ingest.validate import Options, build_plan, load_mapping
from importer.report.tables import write_table

#: Problems printed to the terminal; the report file always has all of them.
SHOWN_PROBLEMS = 40


def parse_options(mapping: str | None, sets: tuple[str, ...]) -> Options:
    options = Options()
    if mapping:
        try:
            options.mapping = load_mapping(mapping)
        except (OSError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="--mapping") from None
    for item in sets:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise click.BadParameter(f"{item!r}: use column=value", param_hint="--set")
        options.constants[column.strip()] = value.strip()
    return options


def plan_or_exit(files: tuple[str, ...], options: Options, defer: bool = False) -> Plan:
    """Build the plan; an unreadable file is a ``CommandError``: one line on stderr and exit code 2.
    ``defer``: rows found plain are built only when sent (see ``build_plan``)."""
    try:
        return build_plan(list(files), options, defer)
    except InputError as exc:
        raise CommandError(str(exc), EXIT_INVALID_INPUT) from None
    except RecursionError:
        raise CommandError("the input is nested too deeply to check", EXIT_INVALID_INPUT) from None
    except MemoryError:
        raise CommandError("the input is too large to check in memory; split it into smaller files",
                           EXIT_INVALID_INPUT) from None
    except Exception as exc:  # noqa: BLE001 - a bug must still end in one line, not a traceback (issue 16)
        text = " ".join(str(exc).split())[:200]
        raise CommandError(f"could not check {', '.join(Path(f).name for f in files)} (unexpected "
                           f"{type(exc).__name__}: {text}); please report this", EXIT_INVALID_INPUT) from None


def print_problems(plan: Plan, limit: int = SHOWN_PROBLEMS) -> None:
    """Every problem, one line each; the same reason for the same column on many rows is one line naming them."""
    groups: dict[tuple, list[Problem]] = {}
    for problem in plan.problems:
        key = (problem.severity, problem.file, problem.sheet, problem.column, problem.reason)
        groups.setdefault(key if problem.row is not None else (id(problem),), []).append(problem)
    lines = []
    for same in groups.values():
        first = same[0]
        if len(same) < 4:
            lines += [str(p) for p in same]
            continue
        rows = [p.row for p in same]
        shown = ", ".join(str(r) for r in rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        sheet = f" [{first.sheet}]" if first.sheet else ""
        column = f", column {first.column}" if first.column else ""
        lines.append(f"{first.severity}: {first.file}{sheet} rows {shown}{column}: {first.reason}")
    for line in lines[:limit]:
        click.echo(f"  {line}")
    if len(lines) > limit:
        click.echo(f"  … and {len(lines) - limit} more (write them all with --report FILE)")


def print_summary(plan: Plan) -> None:
    click.echo(f"Plan: {plan.describe()}")


def write_problems(plan: Plan, path: str) -> Path:
    return write_table(path, list(PROBLEM_COLUMNS), [p.as_dict() for p in plan.problems])


def run_validate(files: tuple[str, ...], options: Options, report: str | None, as_json: bool) -> int:
    plan = plan_or_exit(files, options, defer=True)
    if report:
        try:
            write_problems(plan, report)
        except (OSError, ValueError) as exc:
            click.echo(f"error: cannot write {report}: {exc}", err=True)
            return EXIT_INVALID_INPUT
    if as_json:
        click.echo(json.dumps({"valid": plan.ok, "summary": plan.summary(), "files": plan.files,
                               "problems": [p.as_dict() for p in plan.problems]}, indent=2))
    else:
        print_problems(plan)
        print_summary(plan)
        if report:
            click.echo(f"Problems written to {report}")
        click.echo("Valid: ready to import." if plan.ok else "Not valid: fix the errors above (or use --skip-invalid).")
    return EXIT_OK if plan.ok else EXIT_INVALID_INPUT
