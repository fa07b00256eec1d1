"""Builders of real hostile spreadsheets (issue 16), shared by test_hostile and test_fuzz. Everything is written
from scratch here: openpyxl for workbooks, hand-made XML for ODS and the few things openpyxl will not write."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import openpyxl

ROOT = Path(__file__).resolve().parent.parent
MANGO = "66c4964c11e7fef26751f3a7"
HEADER = ["external_id", "title", "mangoes", "description"]


def course_rows(n: int = 5) -> list[list[str]]:
    return [[f"K{i}", f"Course {i}", MANGO, f"About course {i}"] for i in range(1, n + 1)]


def write_csv(path: Path, rows: list[list[str]], header: list[str] | None = None, sep: str = ",",
              encoding: str = "utf-8", newline: str = "\n") -> Path:
    lines = [sep.join(header or HEADER)] + [sep.join(r) for r in rows]
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def xlsx_book(sheets: dict[str, list[list[object]]], hidden: dict[str, str] | None = None,
              stray: dict[str, tuple[str, object]] | None = None) -> openpyxl.Workbook:
    """sheets: name -> rows (first row the header); hidden: name -> 'hidden' | 'veryHidden';
    stray: name -> (cell, value) written far away."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
        if hidden and name in hidden:
            sheet.sheet_state = hidden[name]
        if stray and name in stray:
            cell, value = stray[name]
            sheet[cell] = value
    return book


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]], hidden: dict[str, str] | None = None,
               stray: dict[str, tuple[str, object]] | None = None) -> Path:
    xlsx_book(sheets, hidden, stray).save(path)
    return path


def write_ods(path: Path, tables: dict[str, list[list[str]]], far: tuple[int, int] | None = None,
              hidden: tuple[str, ...] = ()) -> Path:
    """A minimal OpenDocument spreadsheet; ``far`` = (empty rows, empty columns) before one stray value;
    ``hidden`` tables get a table style with display="false", as LibreOffice's Hide Sheet writes it."""
    ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
          'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"')
    body = []
    for name, rows in tables.items():
        style = ' table:style-name="hide"' if name in hidden else ""
        body.append(f'<table:table table:name="{escape(name)}"{style}>')
        for row in rows:
            cells = "".join(f'<table:table-cell office:value-type="string"><text:p>{escape(v)}</text:p>'
                            "</table:table-cell>" for v in row)
            body.append(f"<table:table-row>{cells}</table:table-row>")
        if far:
            skip_rows, skip_cols = far
            body.append(f'<table:table-row table:number-rows-repeated="{skip_rows}"><table:table-cell/>'
                        "</table:table-row>")
            body.append(f'<table:table-row><table:table-cell table:number-columns-repeated="{skip_cols}"/>'
                        '<table:table-cell office:value-type="string"><text:p>x</text:p></table:table-cell>'
                        "</table:table-row>")
        body.append("</table:table>")
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns} office:version="1.2">'
               '<office:automatic-styles><style:style style:name="hide" style:family="table">'
               '<style:table-properties table:display="false"/></style:style></office:automatic-styles>'
               f'<office:body><office:spreadsheet>{"".join(body)}</office:spreadsheet></office:body>'
               "</office:document-content>")
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
                '<manifest:file-entry manifest:full-path="/" '
                'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
                '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                "</manifest:manifest>")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", compress_type=zipfile.ZIP_STORED)
        zf.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
    return path


def rewrite_zip(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))
    return dst


def encrypted_office_file(path: Path) -> Path:
    """The shape Excel gives a password-protected workbook: an OLE container holding EncryptionInfo and
    EncryptedPackage streams (only the header and the directory names matter to the reader)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + b"\x3e\x00\x03\x00\xfe\xff\x09\x00"
    header = header.ljust(512, b"\x00")
    directory = b""
    for name in ("Root Entry", "EncryptionInfo", "EncryptedPackage"):
        raw = name.encode("utf-16-le") + b"\x00\x00"
        directory += (raw.ljust(64, b"\x00") + len(raw).to_bytes(2, "little")).ljust(128, b"\x00")
    path.write_bytes(header + directory.ljust(512, b"\x00") + os.urandom(2048))
    return path


# -- running the real command line ----------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss: int  # bytes

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def validate_cli(*args: str, timeout: float = 60) -> Run:
    """``python -m importer validate ARGS`` in a subprocess, with its own wall time and peak memory (wait4)."""
    out, err = io.BytesIO(), io.BytesIO()
    proc = subprocess.Popen([sys.executable, "-m", "importer", "validate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=ROOT)
    readers = [threading.Thread(target=lambda s=s, b=b: b.write(s.read())) for s, b in
               ((proc.stdout, out), (proc.stderr, err))]
    for t in readers:
        t.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    start = time.monotonic()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join()
    return Run(proc.returncode, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace"),
               seconds, usage.ru_maxrss * 1024)
