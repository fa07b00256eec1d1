"""Seeded fuzzing of ``validate`` (issue 16): a few hundred mutated spreadsheets, none may end in a traceback or
a hang, and none may pass (exit 0) with rows that differ from what the file holds.

Three kinds of mutation, each with what it must lead to:
- ``same``: a change of form only (encoding, BOM, line endings, delimiter, quoting, blank lines, title rows,
  hidden or styled extras): exit 0 and exactly the original rows;
- ``refuse``: damage that changes rows if read leniently (an unclosed or removed quote, NUL, a stray far
  value, a repeated header, a too-long title, only hidden sheets): exit 2;
- ``any``: random byte or XML damage: exit 0 or 2, and on exit 0 every planned row is one the file really
  holds (its key and title on that row's own line of the CSV, or in the sheet's XML), without line breaks.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import openpyxl

from importer.ingest import csv_read
from tests.hostile_files import MANGO, ROOT, xlsx_book

SEED = 16
HEADER = ["external_id", "title", "mangoes", "description"]
PALETTE = [b'"', b",", b"\n", b"\r", b"\x00", b"\x07", b";", b"\t", b'""', b'"\n', b"\xff", b"\xe9", b" "]


def base_rows(rng: random.Random) -> list[list[str]]:
    rows = []
    for i in range(1, 13):
        title = rng.choice([f"Course {i}", f"Café “{i}”", f"Señor {i}", f"Intro to part {i}"])
        description = rng.choice([f"About {i}", f"Learn A, B and C ({i})", "", f"Line {i}"])
        rows.append([f"K{i}", title, MANGO, description])
    return rows


def csv_text(rows: list[list[str]], header: list[str] = HEADER, sep: str = ",", quote_all: bool = False,
             newline: str = "\n") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator=newline,
                        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def xlsx_bytes(sheets: dict[str, list[list[object]]], hidden: dict[str, str] | None = None,
               far: tuple[str, object] | None = None, styled_far: bool = False) -> bytes:
    first_name = next(iter(sheets))
    book = xlsx_book(sheets, hidden, {first_name: far} if far else None)
    first = book[first_name]
    if styled_far:
        first["XFD1048576"].font = openpyxl.styles.Font(italic=True)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- mutations: each returns (suffix, content, expectation) ----------------------------------------


def same_csv(rng: random.Random, rows: list[list[str]]) -> tuple[str, bytes, str]:
    kind = rng.choice(["bom8", "utf16le", "utf16be", "crlf", "cr", "semicolon", "tab", "quote_all", "blank_lines",
                       "title_rows", "padding", "cp1252", "extra_column"])
    text, suffix, encoding = csv_text(rows), ".csv", "utf-8"
    if kind == "bom8":
        return suffix, codecs.BOM_UTF8 + text.encode(), "same"
    if kind in ("utf16le", "utf16be"):
        sep = rng.choice([",", "\t"])
        body = csv_text(rows, sep=sep, newline="\r\n")
        enc = "utf-16-le" if kind == "utf16le" else "utf-16-be"
        bom = codecs.BOM_UTF16_LE if kind == "utf16le" else codecs.BOM_UTF16_BE
        return ".txt", bom + body.encode(enc), "same"
    if kind == "crlf":
        text = csv_text(rows, newline="\r\n")
    elif kind == "cr":
        text = csv_text(rows, newline="\r")
    elif kind == "semicolon":
        text = csv_text(rows, sep=";")
    elif kind == "tab":
        text, suffix = csv_text(rows, sep="\t"), ".tsv"
    elif kind == "quote_all":
        text = csv_text(rows, quote_all=True)
    elif kind == "blank_lines":
        lines = text.splitlines(keepends=True)
        for _ in range(rng.randint(1, 4)):
            lines.insert(rng.randint(1, len(lines)), rng.choice(["\n", ",,,\n", " , ,\n"]))
        text = "".join(lines)
    elif kind == "title_rows":
        text = rng.choice(["Catalog export\n", "Catalog export,,,\nby someone,,,\n\n"]) + text
    elif kind == "padding":
        text = csv_text([[f" {c} " if c else c for c in r] for r in rows], header=[f" {h}" for h in HEADER])
    elif kind == "cp1252":
        encoding = "cp1252"
    elif kind == "extra_column":
        text = csv_text([[*r, f"note {i}"] for i, r in enumerate(rows)], header=[*HEADER, "notes"])
    return suffix, text.encode(encoding), "same"


def refuse_csv(rng: random.Random, rows: list[list[str]]) -> tuple[str, bytes, str]:
    kind = rng.choice(["open_quote", "drop_closing_quote", "nul", "nul_late", "dup_header", "long_title",
                       "stray_after_quote"])
    rows = [list(r) for r in rows]
    if kind == "drop_closing_quote":
        rows[rng.randrange(len(rows))][3] = "Learn A, B and C"
        rows.append(["K99", "Last", MANGO, "Learn X, Y"])
        text = csv_text(rows)
        quotes = [i for i, ch in enumerate(text) if ch == '"']
        closing = quotes[1::2]
        cut = rng.choice(closing)
        return ".csv", (text[:cut] + text[cut + 1:]).encode(), "refuse"
    if kind == "dup_header":
        header = list(HEADER)
        header[3] = rng.choice(["title", "Title", "TITLE", "external id", "Mangoes"])
        return ".csv", csv_text(rows, header=header).encode(), "refuse"
    if kind == "long_title":
        rows[rng.randrange(len(rows))][1] = "x" * rng.choice([301, 5000, 200_000])
        return ".csv", csv_text(rows).encode(), "refuse"
    text = csv_text(rows)
    lines = text.splitlines(keepends=True)
    r = rng.randrange(1, len(lines))
    if kind == "nul_late":
        pad = [[f"K{100 + i}", f"Filler {i}", MANGO, "y" * 40] for i in range(80)]
        text = csv_text(rows + pad)
        at = rng.randrange(4200, len(text) - 1)
        return ".csv", (text[:at] + "\x00" + text[at:]).encode(), "refuse"
    if kind == "nul":
        at = rng.randrange(0, len(text))
        return ".csv", (text[:at] + "\x00" + text[at:]).encode(), "refuse"
    fields = lines[r].rstrip("\n").split(",")
    f = rng.randrange(len(fields))
    if kind == "open_quote":
        if fields[f].startswith('"'):
            fields[f] = fields[f][1:]  # a removed opening quote leaves its closing one stray
        else:
            fields[f] = '"' + fields[f]
    else:  # stray_after_quote
        fields[f] = '"' + fields[f].strip('"') + '"x'
    lines[r] = ",".join(fields) + "\n"
    return ".csv", "".join(lines).encode(), "refuse"


def any_csv(rng: random.Random, rows: list[list[str]]) -> tuple[str, bytes, str]:
    data = bytearray(csv_text(rows, quote_all=rng.random() < 0.3).encode())
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op = rng.choice(["flip", "insert", "delete", "truncate", "dup_line"])
        at = rng.randrange(len(data)) if data else 0
        if op == "flip" and data:
            data[at] = rng.randrange(256)
        elif op == "insert":
            data[at:at] = rng.choice(PALETTE)
        elif op == "delete":
            del data[at:at + rng.randint(1, 12)]
        elif op == "truncate":
            del data[max(at, 1):]
        elif op == "dup_line":
            lines = bytes(data).splitlines(keepends=True)
            if lines:
                k = rng.randrange(len(lines))
                lines.insert(k, lines[k])
                data = bytearray(b"".join(lines))
    return rng.choice([".csv", ".csv", ".tsv", ".txt"]), bytes(data), "any"


def same_xlsx(rng: random.Random, rows: list[list[str]]) -> tuple[str, bytes, str]:
    kind = rng.choice(["hidden_extra", "very_hidden_extra", "styled_far", "title_rows", "empty_sheet", "dimension"])
    table = [HEADER, *rows]
    if kind in ("hidden_extra", "very_hidden_extra"):
        junk = [["chapter_id", "title"], ["nonsense", "x"]]
        state = "hidden" if kind == "hidden_extra" else "veryHidden"
        return ".xlsx", xlsx_bytes({"courses": table, "chapters": junk}, hidden={"chapters": state}), "same"
    if kind == "styled_far":
        return ".xlsx", xlsx_bytes({"courses": table}, styled_far=True), "same"
    if kind == "title_rows":
        return ".xlsx", xlsx_bytes({"courses": [["Catalog 2026"], [], *table]}), "same"
    if kind == "empty_sheet":
        return ".xlsx", xlsx_bytes({"courses": table, "Notes": []}), "same"
    data = xlsx_bytes({"courses": table})
    huge = b'<dimension ref="A1:XFD1048576"'
    return ".xlsx", _edit_zip(data, lambda n, d: d.replace(b'<dimension ref="A1:D13"', huge)
                              if "worksheets/" in n else d), "same"


def refuse_xlsx(rng: random.Random, rows: list[list[str]]) -> tuple[str, bytes, str]:
    kind = rng.choice(["far", "only_hidden", "dup_header", "long_title"])
    table = [HEADER, *[list(r) for r in rows]]
    if kind == "far":
        cell = rng.choice(["XFD1048576", "AZ1048576", "A1048576", "ZZ200000", "XFD5000", "CV100000"])
        return ".xlsx", xlsx_bytes({"courses": table}, far=(cell, rng.choice(["x", 1, " "]))), "refuse"
    if kind == "only_hidden":
        return ".xlsx", xlsx_bytes({"Sheet1": [], "courses": table}, hidden={"courses": "hidden"}), "refuse"
    if kind == "dup_header":
        table[0] = ["external_id", "title", "mangoes", rng.choice(["title", "Title", "mango ids"])]
        return ".xlsx", xlsx_bytes({"courses": table}), "refuse"
    table[rng.randrange(1, len(table))][1] = "y" * rng.choice([301, 40_000])
    return ".xlsx", xlsx_bytes({"courses": table}), "refuse"


def any_xlsx(rng: random.Random, rows: list[list[str]]) -> tuple[str, bytes, str]:
    data = xlsx_bytes({"courses": [HEADER, *rows]})
    if rng.random() < 0.4:  # damage the zip itself
        buf = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(buf))
            buf[at:at + rng.randint(1, 8)] = os.urandom(rng.randint(0, 8))
        return ".xlsx", bytes(buf), "any"

    def damage(name: str, part: bytes) -> bytes:
        if not name.endswith(".xml") or rng.random() < 0.5:
            return part
        part = bytearray(part)
        for _ in range(rng.choice([1, 1, 2])):
            at = rng.randrange(len(part))
            op = rng.choice(["delete", "insert", "flip"])
            if op == "delete":
                del part[at:at + rng.randint(1, 40)]
            elif op == "insert":
                part[at:at] = rng.choice([b"<", b">", b'"', b"&", b"\x00", b"<c r=\"XFD1048576\"><v>1</v></c>",
                                          b"<row>", b"</row>", b"_x0000_", b"_x0007_"])
            else:
                part[at] = rng.randrange(256)
        return bytes(part)

    return ".xlsx", _edit_zip(data, damage), "any"


def _edit_zip(data: bytes, edit) -> bytes:
    src, out = io.BytesIO(data), io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))
    return out.getvalue()


MUTATIONS = [(same_csv, 60), (refuse_csv, 80), (any_csv, 160), (same_xlsx, 30), (refuse_xlsx, 40), (any_xlsx, 80)]


def generate(directory: Path) -> dict[str, tuple[str, list[list[str]], bytes]]:
    rng = random.Random(SEED)
    cases = {}
    for mutate, count in MUTATIONS:
        for n in range(count):
            rows = base_rows(rng)
            suffix, content, expectation = mutate(rng, rows)
            path = directory / f"{mutate.__name__}_{n:03d}{suffix}"
            path.write_bytes(content)
            cases[str(path)] = (expectation, rows, content)
    return cases


# -- oracles ---------------------------------------------------------------------------------------


def body_of(row: list[str]) -> dict:
    key, title, mangoes, description = (c.strip() for c in row)
    body = {"title": title, "mangoes": [mangoes]}
    if description:
        body["description"] = description
    return body


def _texts(item: dict) -> list[str]:
    """The key as typed (a key made from the title is not in the file) and the title."""
    return [item["title"]] if item["key"].startswith("title:") else [item["key"], item["title"]]


def honest(record: dict, content: bytes, suffix: str) -> str | None:
    """None when every planned row is really in the file; else why not."""
    if suffix == ".xlsx":
        parts = []
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            for name in zf.namelist():
                try:
                    parts.append(zf.read(name))
                except (zipfile.BadZipFile, OSError, ValueError, EOFError):
                    continue  # a damaged part calamine did not need
        xml = b"".join(parts).decode("utf-8", "replace")
        for item in record["items"]:
            for text in _texts(item):
                if escape(text) not in xml and text not in xml:
                    return f"row {item['row']}: {text!r} is not in the workbook"
        return None
    records = _raw_records(csv_read.decode("x", content), suffix)
    for item in record["items"]:
        raw = records[item["row"] - 1] if item["row"] - 1 < len(records) else ""
        for text in _texts(item):
            if "\n" in text or "\r" in text or text not in raw:
                return f"row {item['row']}: {text!r} is not in that row's text ({raw!r})"
    return None


def _raw_records(text: str, suffix: str) -> list[str]:
    """The raw text of each record (a record spans several lines when a quoted cell holds line breaks)."""
    lines = io.StringIO(text, newline="").readlines()
    delimiter = "\t" if suffix == ".tsv" else csv_read.sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    out, start = [], 0
    for _ in reader:
        out.append("".join(lines[start:reader.line_num]))
        start = reader.line_num
    return out


def test_fuzzed_spreadsheets_never_crash_hang_or_pass_with_changed_rows(tmp_path):
    cases = generate(tmp_path)
    assert len(cases) >= 400
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(cases))
    done = subprocess.run([sys.executable, "-m", "tests.fuzz_driver", str(listing)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and len(records) == len(cases), (
        f"driver died after {len(records)} files (next: {list(cases)[len(records)]}): {done.stderr[-2000:]}")
    failures = []
    outcomes: dict[str, set] = {"same": set(), "refuse": set(), "any": set()}
    for record in records:
        expectation, rows, content = cases[record["path"]]
        name = Path(record["path"]).name
        outcomes[expectation].add(record["code"])
        if record["escaped"]:
            failures.append(f"{name}: {record['escaped'].strip().splitlines()[-1]}")
            continue
        if "Traceback" in record["stdout"] + record["stderr"] or record["code"] not in (0, 2):
            failures.append(f"{name}: exit {record['code']}: {record['stderr'][-300:]}")
            continue
        if record["code"] == 2 and record["stderr"] and record["stderr"].count("\n") != 1:
            failures.append(f"{name}: more than one line on stderr: {record['stderr']!r}")
        if expectation == "same":
            want = sorted((r[0].strip(), json.dumps(body_of(r), sort_keys=True)) for r in rows)
            got = sorted((i["key"], json.dumps(i["body"], sort_keys=True)) for i in record.get("items", []))
            if record["code"] != 0 or got != want:
                failures.append(f"{name}: expected the same rows, got exit {record['code']}: "
                                f"{(record['stderr'] or record['stdout'])[-300:]}")
        elif expectation == "refuse" and record["code"] == 0:
            failures.append(f"{name}: damaged file passed: {record['stdout'][-300:]}")
        elif expectation == "any" and record["code"] == 0:
            why = honest(record, content, Path(name).suffix)
            if why:
                failures.append(f"{name}: passed with a changed row: {why}")
        if record["seconds"] > 10:
            failures.append(f"{name}: took {record['seconds']} s")
    assert not failures, "\n".join(failures[:20])
    assert outcomes["any"] >= {0, 2}, "the random damage should yield both outcomes"
