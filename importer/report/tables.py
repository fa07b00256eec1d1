"""Writing tables users open in Excel: CSV or XLSX by extension, with formula injection defused.

Every xlsx this tool writes (problems report, results file, dead-letter export) goes through ``write_sheets``:
control characters that an xlsx cannot hold (openpyxl raises IllegalCharacterError on them) are replaced by
their visible Unicode "control picture" (U+0007 -> ␇), cells longer than Excel's 32,767 characters are cut with
a visible marker, and sheet names are made legal and unique.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: What XML 1.0 (so xlsx) cannot carry: C0 controls but tab, LF, CR; and the non-characters U+FFFE, U+FFFF.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
#: Lone surrogates (from a damaged decode) cannot be encoded at all.
_SURROGATE = re.compile("[\ud800-\udfff]")
EXCEL_CELL_MAX = 32_767
_CUT = "…[cut: {n:,} characters in all]"
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


def defuse(value: object) -> object:
    """Prefix text that Excel would run as a formula with a quote (OWASP CSV-injection advice)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _picture(match: re.Match) -> str:
    code = ord(match.group())
    return chr(0x2400 + code) if code < 0x20 else "\ufffd"


def xlsx_safe(value: object) -> object:
    """A value openpyxl can write and Excel can open, unchanged when it already is one."""
    if not isinstance(value, str):
        return value
    if _ILLEGAL.search(value):
        value = _ILLEGAL.sub(_picture, value)
    if _SURROGATE.search(value):
        value = _SURROGATE.sub("\ufffd", value)
    if len(value) > EXCEL_CELL_MAX:
        marker = _CUT.format(n=len(value))
        value = value[: EXCEL_CELL_MAX - len(marker)] + marker
    return value


def text_safe(value: object) -> object:
    """For CSV: NUL and lone surrogates cannot be written as UTF-8 text; other controls can."""
    if isinstance(value, str) and ("\x00" in value or _SURROGATE.search(value)):
        return _SURROGATE.sub("\ufffd", value.replace("\x00", "\u2400"))
    return value


def sheet_title(name: str, taken: set[str]) -> str:
    """A legal, unique sheet name: no []:*?/\\, at most 31 characters, not empty."""
    base = _SHEET_BAD.sub("_", _ILLEGAL.sub("", str(name))).strip("'") or "Sheet"
    title = base[:31]
    n = 2
    while title.casefold() in taken:
        suffix = f" ({n})"
        title = base[: 31 - len(suffix)] + suffix
        n += 1
    taken.add(title.casefold())
    return title


def write_sheets(path: str | Path, sheets: list[tuple[str, list[str], list[dict]]]) -> Path:
    """One xlsx with one sheet per (name, columns, rows); every value defused and made xlsx-safe."""
    from openpyxl import Workbook

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook(write_only=True)
    taken: set[str] = set()
    for name, columns, rows in sheets or [("Sheet1", [], [])]:
        sheet = book.create_sheet(sheet_title(name, taken))
        sheet.append([xlsx_safe(defuse(c)) for c in columns])
        for row in rows:
            sheet.append([xlsx_safe(defuse(_cell(row.get(c)))) for c in columns])
    book.save(path)
    return path


def _cell(value: object) -> object:
    """openpyxl writes str, numbers, booleans, dates; anything else as its text."""
    if value is None or isinstance(value, str | int | float | bool):
        if isinstance(value, float) and value != value:  # NaN
            return None
        return value
    return str(value)


def write_table(path: str | Path, columns: list[str], rows: list[dict]) -> Path:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return write_sheets(path, [("Sheet1", columns, rows)])
    if suffix in (".csv", ".tsv", ".txt"):
        path.parent.mkdir(parents=True, exist_ok=True)
        safe = [[text_safe(defuse(row.get(c))) for c in columns] for row in rows]
        with open(path, "w", newline="", encoding="utf-8-sig") as fh:
            writer = csv.writer(fh, delimiter="\t" if suffix == ".tsv" else ",")
            writer.writerow(columns)
            writer.writerows(["" if v is None else v for v in row] for row in safe)
        return path
    raise ValueError(f"{path.name}: write .csv or .xlsx")
