"""What each dead-letter error code means and how to fix it: the one table behind the README's
"Troubleshooting dead letters" section and the dashboard's dead-letter groups.

Keys are what ``importer.report.results.dead_reasons`` groups by: TagMango's ``errorCode``, one of the importer's
own codes, or the HTTP status as text when TagMango sent no code (``"401"``, ``"400"``).
``tests/test_troubleshooting.py`` checks that the README shows exactly this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Advice:
    code: str
    label: str  # how the README names it (with the HTTP status where TagMango sends one)
    meaning: str
    fix: str


TABLE: tuple[Advice, ...] = (
    Advice("CHAPTER_USER_ASSET_NOT_FOUND", "`CHAPTER_USER_ASSET_NOT_FOUND` (400)",
           "`content` is not a TagMango CDN URL of an asset you uploaded",
           "upload the file to TagMango, put its CDN URL in the row, `requeue --from`"),
    Advice("CHAPTER_NOT_FOUND", "`CHAPTER_NOT_FOUND` (404)", "the chapter id does not exist for this host",
           "correct `chapter_id` (or use `course_ref` + `chapter_slot`), `requeue --from`"),
    Advice("CHAPTER_VIDEO_UPLOAD_NOT_ENABLED", "`CHAPTER_VIDEO_UPLOAD_NOT_ENABLED` (403)",
           "the creator may not upload video", "ask TagMango to enable it, then `requeue --error-code ...`"),
    Advice("COURSE_USER_NOT_CREATOR", "`COURSE_USER_NOT_CREATOR` (403)",
           "the token's user is not a creator; the job's other rows are parked as `CREDENTIAL_REFUSED`",
           "use a creator's key, `requeue --all`"),
    Advice("COURSE_NOT_FOUND", "`COURSE_NOT_FOUND` (404)", "a course id that does not exist for this host",
           "check the host"),
    Advice("401", "401 `Invalid token`", "wrong or expired key; other rows parked as `CREDENTIAL_REFUSED`",
           "fix `TAGMANGO_API_TOKEN` for the workers, `requeue --all`"),
    Advice("400", "400 without code",
           "TagMango's generic validation error (unknown mango id, empty title, bad field)",
           "check the request body in `dead`, fix the row, `requeue --from`"),
    Advice("RETRIES_EXHAUSTED", "`RETRIES_EXHAUSTED`",
           "transient failures (429/5xx/timeouts) outlasted the attempts; the message says the last one",
           "when TagMango is healthy: `requeue --error-code RETRIES_EXHAUSTED`"),
    Advice("DEPENDENCY_FAILED", "`DEPENDENCY_FAILED`",
           "the row it waits for (its course, module, or the lesson before it) is dead; the message names that row",
           "fix and requeue that row; the rows waiting for it follow"),
    Advice("COURSE_REF_NOT_FOUND", "`COURSE_REF_NOT_FOUND`",
           "`course_ref` is neither in this import nor in an earlier one to this host",
           "import the course first, or fix the ref"),
    Advice("NOT_IN_TAGMANGO", "`NOT_IN_TAGMANGO`",
           "update mode: the course, module or lesson does not exist in TagMango (update mode creates nothing)",
           "run again with `--mode merge` to create it, or fix the key/title"),
    Advice("AMBIGUOUS_COURSE", "`AMBIGUOUS_COURSE`",
           "several courses with this title (and description) exist under these mangoes; nothing was written",
           "add a `course_id` column with the id of the course to use (the message lists them), `requeue --from`"),
    Advice("CREDENTIAL_REFUSED", "`CREDENTIAL_REFUSED`", "not sent: the job's credential was refused on another row",
           "fix the worker's token, `requeue --all`"),
    Advice("NO_CREDENTIALS", "`NO_CREDENTIALS`", "not sent: the worker has no token for the host or URL",
           "fix the worker's environment, `requeue --all`"),
    Advice("WORKER_LOST", "`WORKER_LOST`", "the row's task killed its worker repeatedly",
           "read `worker.log`, fix, requeue"),
    Advice("DUPLICATE_IN_TAGMANGO", "`DUPLICATE_IN_TAGMANGO`",
           "not a dead row: the row's course was created, and TagMango now holds another course with its title "
           "under its mangoes (another import of the same file ran at the same time without sharing Redis?); "
           "the message names both ids; the job exits 1",
           "keep one course and delete the other in TagMango; make every machine importing for this creator use "
           "the same `TAGMANGO_REDIS_URL`"),
)

BY_CODE = {a.code: a for a in TABLE}


def advice(code: str | None) -> Advice:
    """The advice for a dead-letter group; an unknown code gets a generic line rather than nothing."""
    code = str(code or "")
    if code in BY_CODE:
        return BY_CODE[code]
    if code.isdigit():
        return Advice(code, f"HTTP {code}", f"TagMango answered {code} without an error code",
                      "look at the message and request body in `dead`, fix the row, `requeue --from`")
    return Advice(code, f"`{code}`", "an error code this importer has no advice for",
                  "look at the message and request body in `dead`; requeue once fixed")


def markdown() -> str:
    """The README's table, exactly."""
    lines = ["| error code | meaning | fix |", "|---|---|---|"]
    lines += [f"| {a.label} | {a.meaning} | {a.fix} |" for a in TABLE]
    return "\n".join(lines)
