"""How far a workbook sheet's data really reaches, found before calamine reads the sheet.

calamine turns a sheet into one dense grid from A1 (or the first value) to the last cell that holds a value, so a
single stray value at XFD1048576 asks for 17 billion cells and aborts the process; a stray value at AZ1048576
costs gigabytes. Here the sheet's XML (.xlsx/.xlsm) or content.xml (.ods) is streamed once and the cells that hold
a value are counted and their extent measured, so the caller can refuse a sheet whose grid would be absurd
before anything big is allocated. Memory here is bounded by one chunk of XML; nothing is kept per cell.
"""

from __future__ import annotations

import posixpath
from operator import itemgetter
import re
import zipfile
from dataclasses import dataclass
from xml.etree import ElementTree
from xml.parsers import expat

from importer.ingest.problems import InputError, column_letter

#: A sheet's grid (rows x columns up to the farthest value) may always be this big...
MAX_GRID_CELLS = 4_000_000
#: ... or this many times the cells that really hold a value (a sparse but honest sheet).
SPARSE_FACTOR = 8
#: Never more than this many cells in one grid, however full (about 800 MB in calamine alone).
MAX_GRID_HARD = 25_000_000
#: Uncompressed XML a workbook may unpack to, all parts together.
MAX_XML_BYTES = 1 << 30
#: A part that unpacks to more than ``BOMB_MIN_BYTES`` and more than this many times its packed size is a zip bomb.
BOMB_RATIO = 400
BOMB_MIN_BYTES = 64 << 20
#: workbook.xml and its rels are small; a huge one is not a workbook we can trust.
MAX_SMALL_PART = 32 << 20
_CHUNK = 4 << 20


@dataclass
class Extent:
    """Cells holding a value in one sheet: how many, and the farthest row and column (1-based, 0 when none)."""

    rows: int = 0
    cols: int = 0
    values: int = 0
    exact: bool = True  # False: rows/cols also count empty (styled) cells, so they may be too big
    far_row: str | None = None  # a cell with a value at the farthest row, e.g. "A1048576", when known
    far_col: str | None = None  # ... and at the farthest column

    @property
    def grid(self) -> int:
        return self.rows * self.cols

    def acceptable(self) -> bool:
        return self.grid <= MAX_GRID_HARD and (self.grid <= MAX_GRID_CELLS or self.grid <= SPARSE_FACTOR * self.values)


def col_letters(index: int) -> str:
    """1-based: 1 -> A, 27 -> AA."""
    return column_letter(index - 1)


def col_index(letters: bytes | str) -> int:
    """A -> 1, AA -> 27."""
    n = 0
    for ch in letters.upper() if isinstance(letters, str) else letters.upper().decode("ascii"):
        n = n * 26 + ord(ch) - 64
    return n


# -- xlsx ------------------------------------------------------------------------------------------


def check_zip(file: str, zf: zipfile.ZipFile) -> None:
    """Refuse zip bombs and absurd archives from their directory, before unpacking anything."""
    total = 0
    for info in zf.infolist():
        total += info.file_size
        if info.file_size > BOMB_MIN_BYTES and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
            raise InputError(file, f"part {info.filename} unpacks to {info.file_size:,} bytes from "
                                   f"{info.compress_size:,}: not a spreadsheet we can read safely")
    if total > MAX_XML_BYTES:
        raise InputError(file, f"unpacks to {total:,} bytes (more than {MAX_XML_BYTES:,}): too large to check; "
                               "split it into smaller files")


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
        if target.startswith("/"):
            path = target.lstrip("/")
        else:
            path = posixpath.normpath(posixpath.join("xl", target))
        targets[rel.get("Id")] = path
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
            block = fh.read(_CHUNK)
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
            while block := fh.read(_CHUNK):
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


# -- ods -------------------------------------------------------------------------------------------


_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"


def ods_extents(zf: zipfile.ZipFile) -> dict[str, Extent]:
    """Sheet name -> extent, from content.xml, counting repeated rows and columns as LibreOffice writes them."""
    extents: dict[str, Extent] = {}
    st = {"sheet": None, "row": 0, "row_repeat": 1, "col": 0, "cell": None, "depth": 0}

    def start(name: str, attrs: dict) -> None:
        if name == f"{_TABLE} table":
            st["sheet"] = attrs.get(f"{_TABLE} name", "")
            extents.setdefault(st["sheet"], Extent())
            st["row"] = 0
        elif st["sheet"] is None:
            return
        elif name == f"{_TABLE} table-row":
            st["row_repeat"] = _int(attrs.get(f"{_TABLE} number-rows-repeated"))
            st["col"] = 0
        elif name in (f"{_TABLE} table-cell", f"{_TABLE} covered-table-cell"):
            repeat = _int(attrs.get(f"{_TABLE} number-columns-repeated"))
            has_value = f"{_OFFICE} value-type" in attrs
            st["cell"] = [repeat, has_value]
        elif st["cell"] is not None and name.startswith(_TEXT):
            st["cell"][1] = True

    def end(name: str) -> None:
        if st["sheet"] is None:
            return
        extent = extents[st["sheet"]]
        if name in (f"{_TABLE} table-cell", f"{_TABLE} covered-table-cell") and st["cell"] is not None:
            repeat, has_value = st["cell"]
            first = st["col"] + 1
            st["col"] += repeat
            if has_value:
                rows = st["row_repeat"]
                extent.values += repeat * rows
                last_row = st["row"] + rows
                if last_row > extent.rows:
                    extent.rows, extent.far_row = last_row, f"{col_letters(first)}{last_row}"
                if st["col"] > extent.cols:
                    extent.cols, extent.far_col = st["col"], f"{col_letters(st['col'])}{last_row}"
            st["cell"] = None
        elif name == f"{_TABLE} table-row":
            st["row"] += st["row_repeat"]
        elif name == f"{_TABLE} table":
            st["sheet"] = None

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        with zf.open("content.xml") as fh:
            while block := fh.read(_CHUNK):
                parser.Parse(block, False)
            parser.Parse(b"", True)
    except (expat.ExpatError, KeyError):
        pass
    return extents


def _int(text: str | None) -> int:
    try:
        return max(1, min(int(text or 1), 1 << 24))
    except ValueError:
        return 1


# -- the verdict -----------------------------------------------------------------------------------


def refuse(file: str, sheet: str, extent: Extent, far: tuple[str | None, str | None] = (None, None)) -> InputError:
    """One line naming the sheet, the far cell(s) and what to do."""
    far_row, far_col = far
    if not far_row and not far_col:
        far_row, far_col = extent.far_row, extent.far_col
    cells = [c for c in dict.fromkeys((far_row, far_col)) if c]
    if cells:
        where = " and ".join(cells)
        first = re.match(r"([A-Z]+)([0-9]+)", cells[0])
        what = (f"sheet {sheet!r}, row {first.group(2)}, column {first.group(1)}: a value at {where} lies far outside "
                f"the rest of the data")
    else:
        what = f"sheet {sheet!r}: values reach row {extent.rows:,}, column {col_letters(extent.cols)}"
    reason = (f"{what} (a grid of {extent.grid:,} cells for {extent.values:,} values); delete it, or clear the rows "
              f"and columns after your data, and save again")
    if extent.grid > MAX_GRID_HARD and extent.values * 2 >= extent.grid:
        reason = (f"sheet {sheet!r}: {extent.values:,} cells hold values (up to row {extent.rows:,}, column "
                  f"{col_letters(extent.cols)}): too large to check at once; split it into files of at most "
                  f"{MAX_GRID_HARD:,} cells")
    return InputError(file, reason)
