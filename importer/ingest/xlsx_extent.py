"""How far each sheet of an .xlsx/.xlsm workbook reaches, from its XML part: the sheet's own ``<dimension>``
when no cell lies beyond it, else the cells themselves, streamed (``importer.ingest.extent``)."""

from __future__ import annotations

import posixpath
import re
import zipfile
from operator import itemgetter
from xml.etree import ElementTree
from xml.parsers import expat

from importer.ingest.extent import CHUNK, MAX_SMALL_PART, Extent, col_index, col_letters


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _small_xml(zf: zipfile.ZipFile, name: str) -> ElementTree.Element | None:
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.file_size > MAX_SMALL_PART:
        return None
    try:
        return ElementTree.fromstring(zf.read(info))
    except (ElementTree.ParseError, zipfile.BadZipFile, ValueError, OSError):
        return None


def sheet_parts(zf: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> its XML part, from xl/workbook.xml and its relationships (names as calamine shows them)."""
    book = _small_xml(zf, "xl/workbook.xml")
    rels = _small_xml(zf, "xl/_rels/workbook.xml.rels")
    if book is None or rels is None:
        return {}
    targets = {}
    for rel in rels:
        target = rel.get("Target") or ""
        # An absolute target is from the package root; a relative one from xl/.
        targets[rel.get("Id")] = (target.lstrip("/") if target.startswith("/")
                                  else posixpath.normpath(posixpath.join("xl", target)))
    parts = {}
    for element in book.iter():
        if _local(element.tag) != "sheet":
            continue
        rid = next((v for k, v in element.attrib.items() if _local(k) == "id"), None)
        if element.get("name") is not None and rid in targets:
            parts[element.get("name")] = targets[rid]
    return parts


def worksheet_parts(zf: zipfile.ZipFile) -> list[str]:
    """Every part that may be a sheet: used when a sheet's own part cannot be told."""
    return [n for n in zf.namelist() if n.lower().endswith(".xml") and "sheets/" in n.lower()]


_first, _second = itemgetter(0), itemgetter(1)
_CELL_REF = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"')
_CONTENT_CELL = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"[^>/]*>')


def xlsx_extent(zf: zipfile.ZipFile, part: str) -> Extent:
    """Extent of one sheet part.

    Quickest: the sheet's own ``<dimension ref="A1:G100001"/>``, believed only once no cell is found beyond it.
    Then: every cell's plain ``r="B7"`` read by one regex. Otherwise (cells placed by position, prefixed
    namespaces): an exact expat pass.
    """
    extent = _xlsx_dimension(zf, part)
    if extent is not None and extent.acceptable():
        return extent
    extent = _xlsx_fast(zf, part, _CELL_REF)
    if extent is None:
        return _xlsx_expat(zf, part)
    if not extent.acceptable():
        # The fast pass also counts empty styled cells (<c r="XFD1" s="1"/>), which calamine skips: look again,
        # counting only cells with content, before refusing.
        exact = _xlsx_fast(zf, part, _CONTENT_CELL)
        extent = exact if exact is not None else _xlsx_expat(zf, part)
    return extent


def _chunks(zf: zipfile.ZipFile, part: str):  # noqa: ANN202 - generator of bytes cut at a '<'
    tail = b""
    with zf.open(part) as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                break
            buf = tail + block
            cut = buf.rfind(b"<")
            if cut <= 0:
                tail = buf
                continue
            yield buf[:cut]
            tail = buf[cut:]
    if tail:
        yield tail


_DIMENSION = re.compile(rb'<dimension ref="(?:\$?[A-Z]{1,3}\$?[0-9]{1,7}:)?\$?([A-Z]{1,3})\$?([0-9]{1,7})"')
_ODD_CELL = re.compile(rb'<c(?! r="[A-Z]{1,3}[0-9]{1,7}")[\s/>]')
_PREFIXED_CELL = re.compile(rb':c[\s/>]')


def _after_number(n: int) -> bytes:
    """A regex for whole numbers greater than ``n``."""
    digits = str(n)
    alternatives = [f"[0-9]{{{len(digits) + 1},}}"]
    for i, ch in enumerate(digits):
        if ch != "9":
            rest = len(digits) - i - 1
            alternatives.append(digits[:i] + f"[{int(ch) + 1}-9]" + (f"[0-9]{{{rest}}}" if rest else ""))
    return ("(?:" + "|".join(alternatives) + ")").encode()


def _after_letters(letters: str) -> bytes:
    """A regex for column letters after ``letters`` (G -> H..Z, AA..XFD)."""
    alternatives = [f"[A-Z]{{{len(letters) + 1},3}}"] if len(letters) < 3 else []
    for i, ch in enumerate(letters):
        if ch != "Z":
            rest = len(letters) - i - 1
            alternatives.append(letters[:i] + f"[{chr(ord(ch) + 1)}-Z]" + (f"[A-Z]{{{rest}}}" if rest else ""))
    return ("(?:" + "|".join(alternatives or ["(?!)"]) + ")").encode()


def _xlsx_dimension(zf: zipfile.ZipFile, part: str) -> Extent | None:
    """The declared extent, when every cell has a plain reference and none lies beyond it; else None."""
    beyond = None
    extent = None
    for buf in _chunks(zf, part):
        if extent is None:
            m = _DIMENSION.search(buf, 0, 4096)
            if m is None:
                return None
            extent = Extent(rows=int(m.group(2)), cols=col_index(m.group(1)), exact=False)
            beyond = re.compile(rb'<c r="(?:[A-Z]{1,3}' + _after_number(extent.rows) + rb'|'
                                + _after_letters(m.group(1).decode()) + rb'[0-9]{1,7})"')
        if _ODD_CELL.search(buf) or _PREFIXED_CELL.search(buf) or beyond.search(buf):
            return None
        extent.values += buf.count(b"</c>")
    return extent


def _xlsx_fast(zf: zipfile.ZipFile, part: str, pattern: re.Pattern) -> Extent | None:
    max_row = 0
    cols: set[bytes] = set()
    values = 0
    for buf in _chunks(zf, part):
        refs = buf.count(b'<c r="')
        if buf.count(b"<c ") != refs or b"<c>" in buf or b"<c/" in buf or b":c " in buf or b":c>" in buf:
            return None  # a cell without r="..." (placed by position) or a prefixed namespace: the exact pass
        found = pattern.findall(buf)
        if pattern is _CELL_REF and len(found) != refs:
            return None  # r="$A$1", r="a1" and such
        values += buf.count(b"</c>")
        if found:
            cols.update(map(_first, found))
            max_row = max(max_row, max(map(int, map(_second, found))))
    max_col = max((col_index(c) for c in cols), default=0)
    return Extent(rows=max_row, cols=max_col, values=values, exact=pattern is _CONTENT_CELL)


def _xlsx_expat(zf: zipfile.ZipFile, part: str) -> Extent:
    """Exact: places cells the way calamine does (r="..." when present, else the next column / row)."""
    extent = Extent()
    state = {"row": 0, "col": 0, "cell": None, "has_value": False}
    ref = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]{1,7})$")

    def start(name: str, attrs: dict) -> None:
        local = name.rsplit(":", 1)[-1].rsplit("}", 1)[-1]
        if local == "row":
            r = attrs.get("r")
            state["row"] = int(r) if r and r.isdigit() else state["row"] + 1
            state["col"] = 0
        elif local == "c":
            r = attrs.get("r")
            m = ref.match(r) if r else None
            if m:
                state["col"] = col_index(m.group(1))
                row = int(m.group(2))
            else:
                state["col"] += 1
                row = state["row"]
            state["cell"] = (row, state["col"])
            state["has_value"] = False
        elif local in ("v", "is") and state["cell"] is not None:
            state["has_value"] = True

    def end(name: str) -> None:
        local = name.rsplit(":", 1)[-1].rsplit("}", 1)[-1]
        if local == "c" and state["cell"] is not None:
            if state["has_value"]:
                row, col = state["cell"]
                extent.values += 1
                if row > extent.rows:
                    extent.rows, extent.far_row = row, f"{col_letters(col)}{row}"
                if col > extent.cols:
                    extent.cols, extent.far_col = col, f"{col_letters(col)}{row}"
            state["cell"] = None

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        with zf.open(part) as fh:
            while block := fh.read(CHUNK):
                parser.Parse(block, False)
            parser.Parse(b"", True)
    except expat.ExpatError:
        pass  # calamine will say what is wrong with the XML; what was seen so far still bounds it
    return extent


def far_cells(zf: zipfile.ZipFile, part: str) -> tuple[str | None, str | None]:
    """The cell with a value at the highest row, and the one at the highest column (for the message)."""
    best_row: tuple[int, str] = (0, "")
    best_col: tuple[int, str] = (0, "")
    for buf in _chunks(zf, part):
        for letters, digits in _CONTENT_CELL.findall(buf):
            row, col = int(digits), col_index(letters)
            if row > best_row[0]:
                best_row = (row, (letters + digits).decode())
            if col > best_col[0]:
                best_col = (col, (letters + digits).decode())
    return best_row[1] or None, best_col[1] or None
