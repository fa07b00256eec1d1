"""Writing tables users open in Excel: CSV or XLSX by extension, with formula injection defused."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def defuse(value: object) -> object:
    """Prefix text that Excel would run as a formula with a quote (OWASP CSV-injection advice)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_table(path: str | Path, columns: list[str], rows: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    safe = [[defuse(row.get(c)) for c in columns] for row in rows]
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        pd.DataFrame(safe, columns=columns, dtype=object).to_excel(path, index=False, engine="openpyxl")
    elif suffix in (".csv", ".tsv", ".txt"):
        with open(path, "w", newline="", encoding="utf-8-sig") as fh:
            writer = csv.writer(fh, delimiter="\t" if suffix == ".tsv" else ",")
            writer.writerow(columns)
            writer.writerows(["" if v is None else v for v in row] for row in safe)
    else:
        raise ValueError(f"{path.name}: write .csv or .xlsx")
    return path
