"""Hostile spreadsheets (issue 16): no crash, no silent data change, bounded memory.

Each case is a real file in tmp_path run through the real command line (``python -m importer validate``): exit 2
(or 0 where the file is fine), one line naming file, sheet, row and column, no traceback, within 10 s and 1 GB.
"""

from __future__ import annotations

import json
import os
import re
import zipfile

import openpyxl
import pytest

from importer.ingest import csv_read
from importer.ingest import extent as xlsx_bounds
from importer.ingest.columns import known_headers
from importer.ingest.limits import LIMITS
from importer.ingest.problems import InputError
from importer.ingest.reader import read_file
from importer.ingest.validate import build_plan
from importer.report.tables import write_sheets, write_table
from tests.hostile_files import (
    HEADER,
    MANGO,
    course_rows,
    encrypted_office_file,
    rewrite_zip,
    validate_cli,
    write_csv,
    write_ods,
    write_xlsx,
)

SECONDS = 10
MEMORY = 1 << 30


def refused(run, *needles: str) -> str:
    """Exit 2, exactly one line on stderr containing every needle, no traceback, in bounds."""
    assert run.returncode == 2, run.output
    assert "Traceback" not in run.output
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert run.seconds < SECONDS and run.max_rss < MEMORY, (run.seconds, run.max_rss)
    return lines[0]


def fine(run) -> str:
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output and run.seconds < SECONDS and run.max_rss < MEMORY
    return run.stdout


# -- stray far cells: bounded by the cells that hold data ------------------------------------------


@pytest.mark.parametrize("cell", ["XFD1048576", "AZ1048576", "XFD5000", "A1048576"])
def test_stray_far_value_is_refused_quickly_naming_the_cell(tmp_path, cell):
    f = write_xlsx(tmp_path / "stray.xlsx", {"courses": [HEADER, *course_rows(3)]}, stray={"courses": (cell, "x")})
    assert f.stat().st_size < 10_000
    column, row = re.match(r"([A-Z]+)(\d+)", cell).groups()
    refused(validate_cli(str(f)), "stray.xlsx", "sheet 'courses'", f"row {row}", f"column {column}", cell)


def test_far_column_in_the_header_row_is_read_as_a_column(tmp_path):
    f = write_xlsx(tmp_path / "wide.xlsx", {"courses": [HEADER, *course_rows(3)]}, stray={"courses": ("XFD1", "x")})
    assert "unknown column 'x'" in fine(validate_cli(str(f)))


def test_stray_value_not_far_is_read_and_reported_on_its_real_row(tmp_path):
    f = write_xlsx(tmp_path / "near.xlsx", {"courses": [HEADER, *course_rows(3)]}, stray={"courses": ("B5000", "x")})
    run = validate_cli(str(f), "--json")
    assert run.returncode == 2 and run.seconds < SECONDS
    problems = json.loads(run.stdout)["problems"]
    assert {(p["row"], p["column"]) for p in problems if p["severity"] == "error"} == {(5000, "mangoes")}


def test_styled_empty_far_cell_is_harmless(tmp_path):
    f = write_xlsx(tmp_path / "styled.xlsx", {"courses": [HEADER, *course_rows(3)]})
    book = openpyxl.load_workbook(f)
    book["courses"]["XFD1048576"].font = openpyxl.styles.Font(bold=True)  # a cell with a style, no value
    book.save(f)
    assert "3 courses to create" in fine(validate_cli(str(f)))


def test_huge_declared_dimension_alone_is_harmless(tmp_path):
    f = write_xlsx(tmp_path / "base.xlsx", {"courses": [HEADER, *course_rows(3)]})
    g = rewrite_zip(f, tmp_path / "dim.xlsx", lambda name, data: re.sub(
        rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', data) if "worksheets/" in name else data)
    assert b"XFD1048576" in zipfile.ZipFile(g).read("xl/worksheets/sheet1.xml")
    assert "3 courses to create" in fine(validate_cli(str(g)))


def test_a_lying_small_dimension_does_not_hide_a_far_cell(tmp_path):
    f = write_xlsx(tmp_path / "base.xlsx", {"courses": [HEADER, *course_rows(3)]}, stray={"courses": ("XFD1048576", 1)})
    g = rewrite_zip(f, tmp_path / "lie.xlsx", lambda name, data: re.sub(
        rb'<dimension ref="[^"]*"', b'<dimension ref="A1:D4"', data) if "worksheets/" in name else data)
    refused(validate_cli(str(g)), "XFD1048576")


def test_cells_placed_by_position_are_measured_too(tmp_path):
    """Cells without r="..." (some writers) go through the exact pass, which places them as calamine does."""
    f = write_xlsx(tmp_path / "base.xlsx", {"courses": [HEADER, *course_rows(3)]})
    far_row = '<row r="1048576"><c t="inlineStr"><is><t>x</t></is></c></row>'

    def edit(name: str, data: bytes) -> bytes:
        if "worksheets/" not in name:
            return data
        data = re.sub(rb' r="[A-Z]+[0-9]+"', b"", data)  # drop every cell reference
        return data.replace(b"</sheetData>", far_row.encode() + b"</sheetData>")

    g = rewrite_zip(f, tmp_path / "positional.xlsx", edit)
    refused(validate_cli(str(g)), "A1048576")
    h = rewrite_zip(f, tmp_path / "positional_ok.xlsx",
                    lambda n, d: re.sub(rb' r="[A-Z]+[0-9]+"', b"", d) if "worksheets/" in n else d)
    assert "3 courses to create" in fine(validate_cli(str(h)))


def test_ods_far_value_is_refused(tmp_path):
    f = write_ods(tmp_path / "far.ods", {"courses": [HEADER, *course_rows(3)]}, far=(1_048_000, 16_000))
    refused(validate_cli(str(f)), "far.ods", "sheet 'courses'", "row 1048005", "column WQK")
    g = write_ods(tmp_path / "ok.ods", {"courses": [HEADER, *course_rows(3)]})
    assert "3 courses to create" in fine(validate_cli(str(g)))


def test_zip_bomb_is_refused_from_the_directory(tmp_path):
    f = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/worksheets/sheet1.xml", b" " * (xlsx_bounds.BOMB_MIN_BYTES + 1))
    refused(validate_cli(str(f)), "bomb.xlsx", "unpacks to")


@pytest.mark.parametrize("rows,cols,values,ok", [
    (100_001, 7, 700_007, True), (1_048_576, 16_384, 9, False), (1_048_576, 52, 9, False),
    (2_000_000, 2, 4_000_000, True), (600_000, 10, 300_000, False), (5_000, 400, 5_000, True),
    (2_000_000, 20, 40_000_000, False)])
def test_extent_verdicts(rows, cols, values, ok):
    assert xlsx_bounds.Extent(rows, cols, values).acceptable() is ok


# -- hidden sheets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_hidden_courses_sheet_is_never_imported(tmp_path, state):
    visible = [HEADER, ["V1", "Visible one", MANGO, "x"]]
    hidden = [HEADER, *course_rows(4)]
    f = write_xlsx(tmp_path / "h.xlsx", {"Sheet1": visible, "courses": hidden}, hidden={"courses": state})
    out = fine(validate_cli(str(f)))
    assert "1 course to create" in out
    assert "h.xlsx [courses]" in out and "hidden sheet ignored" in out
    plan = build_plan([f])
    assert [i.key for i in plan.rows] == ["V1"]


def test_hidden_ods_table_is_never_imported(tmp_path):
    f = write_ods(tmp_path / "h.ods", {"Sheet1": [HEADER, ["V1", "Visible", MANGO, ""]],
                                       "courses": [HEADER, *course_rows(3)]}, hidden=("courses",))
    out = fine(validate_cli(str(f)))
    assert "1 course to create" in out and "h.ods [courses]" in out and "hidden sheet ignored" in out


def test_only_hidden_sheets_is_an_error_that_says_so(tmp_path):
    f = write_xlsx(tmp_path / "h.xlsx", {"Sheet1": [], "courses": [HEADER, *course_rows(2)]},
                   hidden={"courses": "hidden"})
    refused(validate_cli(str(f)), "h.xlsx", "no visible sheet", "'courses'")


# -- CSV quotes ------------------------------------------------------------------------------------


def test_unclosed_quote_running_to_the_end_is_an_error_on_its_row(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text("external_id,title,mangoes,description\n"
                 f"K1,Course 1,{MANGO},fine\n"
                 f'K2,"Course 2,{MANGO},oops\n'
                 f"K3,Course 3,{MANGO},lost\n"
                 f"K4,Course 4,{MANGO},lost\n")
    refused(validate_cli(str(f)), "q.csv", "row 3 (line 3)", "column B", "never closed")


def test_quote_closed_rows_later_with_stray_text_is_an_error(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text("external_id,title,mangoes,description\n"
                 f'K1,"Course 1,{MANGO},x\n'
                 f"K2,Course 2,{MANGO},y\n"
                 f'K3,Course 3,{MANGO},"quoted, fine"\n')
    refused(validate_cli(str(f)), "q.csv", "row 2 (line 2)", "column B", "stray quote")


def test_quote_closed_cleanly_rows_later_is_an_error(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text("external_id,title,mangoes,description\n"
                 f'K1,Course 1,{MANGO},"Twenty-seven inch\n'
                 f"K2,Course 2,{MANGO},monitor 27\"\n"
                 f"K3,Course 3,{MANGO},z\n")
    refused(validate_cli(str(f)), "q.csv", "row 2 (line 2)", "column D", "whole row")


def test_text_after_a_closing_quote_is_an_error_not_a_column_shift(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text(f'external_id,title,mangoes,description\n"K1,Course 1,"x,{MANGO},d\n')
    refused(validate_cli(str(f)), "q.csv", "row 2 (line 2)", "column A", "after the closing quote")


def test_real_multiline_cells_are_fine(tmp_path):
    f = tmp_path / "ml.csv"
    f.write_text("external_id,title,mangoes,description\n"
                 f'K1,Course 1,{MANGO},"Line one, with a comma\nline two\n\nline four"\n'
                 f'K2,Course 2,"{MANGO}\n66c4964c11e7fef26751f3a8",plain\n'
                 f'K3,"Say ""hi""",{MANGO},x\n')
    out = fine(validate_cli(str(f)))
    assert "3 courses to create" in out
    plan = build_plan([f])
    assert [i.row for i in plan.rows] == [2, 3, 4]
    assert plan.rows[0].body["description"] == "Line one, with a comma\nline two\n\nline four"
    assert plan.rows[2].title == 'Say "hi"'


# -- control characters in every xlsx written ------------------------------------------------------


def test_control_character_in_a_value_does_not_break_the_xlsx_report(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text(f"external_id,title,mangoes\nK1,Bell\x07 course,{MANGO}\nK2,Esc,not\x1ban-id\n")
    report = tmp_path / "problems.xlsx"
    run = validate_cli(str(f), "--report", str(report))
    assert run.returncode == 2 and "Traceback" not in run.output and report.exists()
    values = [c.value for row in openpyxl.load_workbook(report).active.iter_rows() for c in row]
    assert "not␛an-id" in values


def test_every_xlsx_writer_replaces_control_characters_visibly(tmp_path):
    rows = [{"a": "x\x00y\x01z", "b": "=1+1", "c": "é\ud800", "d": "t" * 40_000}, {"a": None, "b": 3, "c": 1.5}]
    write_table(tmp_path / "one.xlsx", ["a", "b", "c", "d"], rows)
    write_sheets(tmp_path / "many.xlsx", [("courses", ["a", "b"], rows), ("bad/name:[x]" * 4, ["a"], rows),
                                          ("courses", ["c"], rows)])
    one = openpyxl.load_workbook(tmp_path / "one.xlsx").active
    assert [c.value for c in one[2]][:3] == ["x␀y␁z", "'=1+1", "é\ufffd"]
    assert len(one["D2"].value) == 32_767 and one["D2"].value.endswith("40,000 characters in all]")
    assert [c.value for c in one[3]][:3] == [None, 3, 1.5]
    many = openpyxl.load_workbook(tmp_path / "many.xlsx")
    assert many.sheetnames[0] == "courses" and many.sheetnames[2] == "courses (2)"
    assert all(len(n) <= 31 and not set(n) & set("[]:*?/\\") for n in many.sheetnames)
    write_table(tmp_path / "one.csv", ["a"], rows)  # the CSV writer copes with NUL and lone surrogates too
    assert "x␀y\x01z" in (tmp_path / "one.csv").read_text(encoding="utf-8-sig")


# -- what is not a file ----------------------------------------------------------------------------


def test_named_pipe_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    refused(validate_cli(str(fifo), timeout=20), "pipe.csv", "named pipe")


@pytest.mark.parametrize("target,reason", [("folder", "folder"), ("/dev/null", "device")])
def test_folder_and_device_are_refused(tmp_path, target, reason):
    path = tmp_path / "folder.csv" if target == "folder" else target
    if target == "folder":
        path.mkdir()
    refused(validate_cli(str(path)), reason)


# -- soft cases ------------------------------------------------------------------------------------


def test_length_limits_per_field(tmp_path):
    f = tmp_path / "long.csv"
    f.write_text("external_id,title,mangoes,description\n"
                 f"K1,{'t' * 1_000_000},{MANGO},x\n"
                 f"K2,Fine,{MANGO},{'d' * (LIMITS['description'] + 1)}\n"
                 f"K3,Fine too,{MANGO},{'d' * LIMITS['description']}\n")
    run = validate_cli(str(f), "--json")
    assert run.returncode == 2 and run.seconds < SECONDS and run.max_rss < MEMORY
    errors = [(p["row"], p["column"], p["reason"]) for p in json.loads(run.stdout)["problems"]
              if p["severity"] == "error"]
    assert errors == [(2, "title", "too long: 1,000,000 characters (at most 300 for title)"),
                      (3, "description", "too long: 50,001 characters (at most 50,000 for description)")]


@pytest.mark.parametrize("size", [csv_read.MAX_CELL_CHARS + 10, 60_000_000])
@pytest.mark.parametrize("quoted", [False, True])
def test_a_cell_over_a_megabyte_is_refused_while_reading(tmp_path, size, quoted):
    f = tmp_path / "huge.csv"
    first = f'"K1",x,{MANGO}\n' if quoted else f"K1,x,{MANGO}\n"
    f.write_text(f"external_id,title,mangoes\n{first}K2,{'t' * size},{MANGO}\n")
    refused(validate_cli(str(f)), "huge.csv", "row 3 (line 3)", "longer than 1,048,576")


def test_calamine_password_error_says_password_protected(tmp_path, monkeypatch):
    """An encrypted .xls (BIFF FILEPASS) makes calamine raise PasswordError; that is 'password-protected' too."""
    import python_calamine

    from importer.ingest import workbook

    def locked(_filelike):
        raise python_calamine.PasswordError("Workbook is password protected")

    monkeypatch.setattr(workbook.CalamineWorkbook, "from_filelike", locked)
    f = write_xlsx(tmp_path / "x.xlsx", {"courses": [HEADER, *course_rows(1)]})
    with pytest.raises(InputError, match="password-protected"):
        read_file(f, known_headers())


def test_long_title_in_a_workbook_is_a_row_error(tmp_path):
    f = write_xlsx(tmp_path / "long.xlsx", {"courses": [HEADER, ["K1", "t" * 5000, MANGO, ""]]})
    plan = build_plan([f])
    assert [(p.row, p.column) for p in plan.errors] == [(2, "title")] and "too long" in plan.errors[0].reason


@pytest.mark.parametrize("second", ["title", "Title", " TITLE "])
def test_repeated_header_is_an_error_whatever_its_case(tmp_path, second):
    f = tmp_path / "dup.csv"
    f.write_text(f"title,mangoes,{second}\nA,{MANGO},B\n")
    run = validate_cli(str(f))
    assert run.returncode == 2 and "both mean title" in run.stdout, run.output


def test_repeated_unknown_header_is_carried_with_a_warning(tmp_path):
    f = tmp_path / "dup.csv"
    f.write_text(f"title,mangoes,notes,notes\nA,{MANGO},x,y\n")
    plan = build_plan([f])
    assert plan.ok and plan.rows[0].source == {"title": "A", "mangoes": MANGO, "notes": "x", "notes (column D)": "y"}
    assert any("same header 'notes'" in p.reason for p in plan.warnings)


def test_nul_byte_after_the_first_4kb_is_refused_with_its_row(tmp_path):
    rows = course_rows(200)
    rows[150][1] = "Cour\x00se 151"
    f = write_csv(tmp_path / "nul.csv", rows)
    assert f.read_bytes().index(b"\x00") > 4096
    refused(validate_cli(str(f)), "nul.csv", "row 152", "column B", "NUL")


def test_header_below_title_rows_is_found_and_said(tmp_path):
    f = tmp_path / "titled.csv"
    f.write_text(f"My catalog 2026,,\nExported by someone,,\n,,\ntitle,mangoes,description\nA,{MANGO},x\n")
    out = fine(validate_cli(str(f)))
    assert "1 course to create" in out and "the header is row 4: rows 1–2 above it" in out
    assert build_plan([f]).rows[0].row == 5


def test_no_header_found_says_where_it_was_looked_for(tmp_path):
    f = tmp_path / "noheader.csv"
    f.write_text("My catalog\nfoo,bar\n1,2\n")
    run = validate_cli(str(f))
    assert run.returncode == 2 and "looked for in rows 1–3" in run.stdout, run.output


def test_utf16_unicode_text_from_excel_is_read(tmp_path):
    f = tmp_path / "unicode.txt"
    text = "title\tmangoes\tdescription\r\nCafé “Señor” 東京\t" + MANGO + "\tx\r\n"
    f.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    assert "1 course to create" in fine(validate_cli(str(f)))
    assert build_plan([f]).rows[0].title == "Café “Señor” 東京"
    g = tmp_path / "big_endian.csv"
    g.write_bytes(b"\xfe\xff" + "title,mangoes\nÅ,".encode("utf-16-be") + MANGO.encode("utf-16-be"))
    assert build_plan([g]).rows[0].title == "Å"


def test_utf16_without_bom_gets_a_plain_reason(tmp_path):
    f = tmp_path / "nobom.csv"
    f.write_bytes(f"title,mangoes\nA,{MANGO}\n".encode("utf-16-le"))
    refused(validate_cli(str(f)), "nobom.csv", "UTF-16", "byte-order mark")


@pytest.mark.parametrize("name", ["locked.xls", "locked.xlsx"])
def test_encrypted_workbook_says_password_protected(tmp_path, name):
    f = encrypted_office_file(tmp_path / name)
    refused(validate_cli(str(f)), name, "password-protected")


def test_pandas_na_words_are_kept_as_typed(tmp_path):
    """Reading through pandas turned the text NA, null or None into an empty cell; calamine directly does not."""
    f = write_xlsx(tmp_path / "na.xlsx", {"courses": [HEADER, ["NA", "null", MANGO, "None"]]})
    [item] = build_plan([f]).rows
    assert (item.key, item.title, item.body["description"]) == ("NA", "null", "None")


def test_reader_errors_are_input_errors_not_tracebacks(tmp_path):
    f = write_xlsx(tmp_path / "ok.xlsx", {"courses": [HEADER, *course_rows(2)]})
    data = bytearray(f.read_bytes())
    data[len(data) // 2: len(data) // 2 + 200] = b"\x00" * 200  # damage the middle of the zip
    g = tmp_path / "damaged.xlsx"
    g.write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        read_file(g, known_headers())
    assert "damaged.xlsx" in str(info.value)


@pytest.mark.parametrize("quoted", [False, True])
def test_csv_row_wider_than_its_header_is_refused_not_shifted(tmp_path, quoted):
    f = tmp_path / "wide.csv"
    first = '"K0",Course 0' if quoted else "K0,Course 0"
    f.write_text(f"external_id,title,mangoes,description\n{first},{MANGO},x\nK1,Course 1,{MANGO},Learn A, B and C\n")
    refused(validate_cli(str(f)), "wide.csv", "row 3, column E", "right of the last header (D)")


def test_utf8_with_one_damaged_byte_is_not_read_as_windows_1252(tmp_path):
    f = tmp_path / "mixed.csv"
    f.write_bytes(f"title,mangoes\nCafé,{MANGO}\nNa\xefve,{MANGO}\n".encode().replace(b"\xc3\xaf", b"\xef"))
    refused(validate_cli(str(f)), "mixed.csv", "line 3, column A", "not UTF-8")
    g = tmp_path / "cp1252.csv"
    g.write_bytes(f"title,mangoes\nCafé “x”,{MANGO}\n".encode("cp1252"))
    assert build_plan([g]).rows[0].title == "Café “x”"


def test_results_file_with_control_characters_and_several_sheets(tmp_path, redis_url):
    from importer.report.results import write_results
    from tasks.job import Job
    from tasks.rows import Row, RowFailure, RowState
    from tasks.rowstore import RowStore

    def row(sheet: str, number: int, title: str) -> Row:
        return Row(row_id=f"{sheet}:{number}", op="create_course", kind="course", file="f.xlsx", sheet=sheet,
                   row=number, key=f"K{sheet}{number}", title=title, state=RowState.DEAD, attempts=1,
                   source={"title": title, "mangoes": MANGO}, error=RowFailure(None, f"bad\x0bthing in {title}"))

    store = RowStore.from_url(redis_url)
    headers = {"courses": ["title", "mangoes"], "chapters": ["title", "mangoes"]}
    store.create_job(Job("job", created_at=1.0, headers=headers),
                     [row("courses", 2, "Bell\x07"), row("chapters", 2, "=cmd|' /C calc'!A0")])
    path = write_results(store, "job", tmp_path / "results.xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["courses", "chapters"]
    courses = [c.value for c in book["courses"][2]]
    assert "Bell␇" in courses and "bad␋thing in Bell␇" in courses
    assert "'=cmd|' /C calc'!A0" in [c.value for c in book["chapters"][2]]
    store.create_job(Job("one", created_at=1.0), [row("courses", 2, "Nul\x00")])
    single = write_results(store, "one", tmp_path / "one.xlsx")
    assert "Nul␀" in [c.value for c in openpyxl.load_workbook(single).active[2]]
