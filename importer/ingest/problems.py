"""What is wrong with an input file: one ``Problem`` per finding, and the fatal ``InputError``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ERROR = "error"
WARNING = "warning"
PROBLEM_COLUMNS = ("file", "sheet", "row", "column", "value", "severity", "reason")
#: Why a file without any header row is refused.
NO_DATA = "contains no data (no header row found)"


def column_letter(index: int) -> str:
    """Excel's name of a 0-based column index: 0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def one_line(exc: BaseException) -> str:
    """An exception's text on one line, at most 160 characters (for an ``InputError``)."""
    text = " ".join(str(exc).split())
    return text[:160] + ("…" if len(text) > 160 else "")


def shorten(value: object, limit: int = 60) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Problem:
    """One finding. ``row`` is the row number the spreadsheet shows (header = 1); None for file-level."""

    file: str
    sheet: str
    row: int | None
    column: str | None
    value: str
    severity: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.file}"
        if self.sheet:
            where += f" [{self.sheet}]"
        if self.row is not None:
            where += f" row {self.row}"
        if self.column:
            where += f", column {self.column}"
        shown = f" ({self.value!r})" if self.value else ""
        return f"{self.severity}: {where}{shown}: {self.reason}"


class InputError(Exception):
    """A file cannot be used at all (unreadable, wrong type, empty...). One clear line, no traceback."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason
