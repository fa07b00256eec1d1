"""Runs ``validate`` in-process on many files, one JSON line per file (used by test_fuzz in a subprocess).

    python -m tests.fuzz_driver LIST   # LIST: one path per line

Each file goes through the real command line entry point (``importer.cli.cli.main``) with stdout and stderr
captured and a 10 s alarm; an exception escaping it is what a user would see as a traceback. For exit 0 the
plan's items are printed too, so the caller can check that no row was changed.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import sys
import time
import traceback

from importer.cli import cli
from importer.ingest.validate import build_plan

PER_FILE_SECONDS = 10


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def run_one(path: str) -> dict:
    out, err = io.StringIO(), io.StringIO()
    escaped = None
    start = time.monotonic()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(PER_FILE_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(args=["validate", path], prog_name="tagmango-import")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Hang:
        code, escaped = None, "hang"
    except BaseException:  # noqa: BLE001 - exactly what must never happen
        code, escaped = None, traceback.format_exc()
    finally:
        signal.alarm(0)
    record = {"path": path, "code": code, "escaped": escaped, "stdout": out.getvalue(), "stderr": err.getvalue(),
              "seconds": round(time.monotonic() - start, 3)}
    if code == 0:
        plan = build_plan([path])
        record["items"] = [{"row": i.row, "key": i.key, "title": i.title, "body": i.body} for i in plan.rows]
    return record


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as fh:
        paths = [line.rstrip("\n") for line in fh if line.strip()]
    for path in paths:
        print(json.dumps(run_one(path), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
