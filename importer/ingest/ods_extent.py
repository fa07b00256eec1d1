"""How far each table of an .ods workbook reaches: content.xml streamed once, repeated rows and columns counted as
LibreOffice writes them (``importer.ingest.bounds`` decides what is acceptable)."""

from __future__ import annotations

import zipfile
from xml.parsers import expat

from importer.ingest.extent import CHUNK, Extent, col_letters

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
            while block := fh.read(CHUNK):
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
