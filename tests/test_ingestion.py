"""Reading, mapping, validating and planning spreadsheets (issue 3). Pure logic plus the CLI in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from importer.ingest.columns import normalise_header
from importer.ingest.plan import Plan
from importer.ingest.problems import ERROR, WARNING, InputError
from importer.ingest.reader import cell_text
from importer.ingest.validate import Options, build_plan, load_mapping
from tasks.operations import cells as rules

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"
UDEMY = ROOT.parent / "shared" / "data" / "udemy_courses.csv"
MANGO = "66c4964c11e7fef26751f3a7"
MANGO2 = "66c4964c11e7fef26751f3a8"
CHAPTER_ID = "5f0c1e2d3b4a596877665544"


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(path: Path, sheets: dict[str, list[dict]]) -> Path:
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, rows in sheets.items():
            pd.DataFrame(rows).to_excel(writer, sheet_name=name, index=False)
    return path


def problems_at(plan: Plan, row: int | None = None, column: str | None = None, severity: str = ERROR) -> list[str]:
    return [p.reason for p in plan.problems
            if p.severity == severity and (row is None or p.row == row) and (column is None or p.column == column)]


# -- cell rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell,expected", [
    (MANGO, [MANGO]), (f"{MANGO}, {MANGO2}", [MANGO, MANGO2]), (f"{MANGO};{MANGO2}", [MANGO, MANGO2]),
    (f"{MANGO}\n{MANGO2}", [MANGO, MANGO2]), (f"{MANGO} {MANGO.upper()}", [MANGO])])
def test_mango_lists_split_on_any_separator(cell, expected):
    assert rules.object_ids(cell) == expected


@pytest.mark.parametrize("rule,cell", [
    (rules.object_ids, "abc"), (rules.object_id, "66c4964c11e7fef26751f3a"), (rules.url, "ftp://x.com/a"),
    (rules.url, "example.com/a"), (rules.boolean, "maybe"), (rules.whole_number_at_least_1, "0"),
    (rules.whole_number_at_least_1, "1.5"), (rules.whole_number_at_least_1, "ten"), (rules.content_type, "gif"),
    (rules.chapter_slot, "third"), (rules.urls_or_clear, "[not json"), (rules.urls_or_clear, "a b")])
def test_bad_cells_are_rejected_with_a_reason(rule, cell):
    with pytest.raises(rules.CellError) as info:
        rule(cell)
    assert str(info.value)


@pytest.mark.parametrize("cell,expected", [("TRUE", True), ("yes", True), ("Y", True), ("1", True),
                                           ("false", False), ("No", False), ("n", False), ("0", False)])
def test_booleans(cell, expected):
    assert rules.boolean(cell) is expected


def test_content_type_error_lists_the_allowed_values():
    with pytest.raises(rules.CellError, match="video, audio, image, pdf"):
        rules.content_type("gif")


@pytest.mark.parametrize("cell,expected", [("[]", []), ("CLEAR", []), ("clear", []),
                                           ('["https://a.com/1"]', ["https://a.com/1"]),
                                           ("https://a.com/1, https://a.com/2", ["https://a.com/1", "https://a.com/2"])])
def test_additional_contents(cell, expected):
    assert rules.urls_or_clear(cell) == expected


@pytest.mark.parametrize("value,expected", [(12345.0, "12345"), (1e23, "1E+23"),
                                            (1234567890123456789.0, "1.23456789012346E+18"), (7, "7"),
                                            ("  padded  ", "padded"), ("", None), (None, None), (True, "TRUE"),
                                            (float("nan"), None)])
def test_cell_text_keeps_ids_as_typed(value, expected):
    assert cell_text(value) == expected


@pytest.mark.parametrize("header", ["cover_image", "Cover Image", "coverImage", "COVER-IMAGE", " cover  image "])
def test_header_spellings_are_one_column(header):
    assert normalise_header(header) == normalise_header("cover_image")


# -- courses ---------------------------------------------------------------------------------------


def test_course_row_becomes_the_documented_body(tmp_path):
    f = write_csv(tmp_path / "c.csv",
                  "External ID,Title,Description,Mangoes,coverImage,validity_in_days,mango_to_sell,"
                  "mangoes_to_show_as_paid,enable_drm,disable_qna,disable_comments\n"
                  f"C1,Intro,<p>Hi</p>,\"{MANGO}, {MANGO2}\",https://cdn.x.com/a.png,30,{MANGO},{MANGO2},yes,0,FALSE\n")
    plan = build_plan([f])
    assert plan.ok, plan.problems
    [item] = plan.rows
    assert item.kind == "course" and item.key == "C1" and item.row == 2 and item.title == "Intro"
    assert item.body == {
        "title": "Intro", "mangoes": [MANGO, MANGO2], "description": "<p>Hi</p>", "coverImage": "https://cdn.x.com/a.png",
        "settings": {"validityInDays": 30, "showAsLocked": {"mangoToSell": MANGO, "mangoesToShowAsPaid": [MANGO2]},
                     "enableDRM": True, "disableQna": False, "disableComments": False}}


def test_empty_cells_are_omitted_not_sent_empty(tmp_path):
    f = write_csv(tmp_path / "c.csv", f"title,mangoes,description,cover_image\nIntro,{MANGO},,\n")
    [item] = build_plan([f]).rows
    assert item.body == {"title": "Intro", "mangoes": [MANGO]}


def test_every_problem_in_a_file_is_reported_with_row_and_column(tmp_path):
    f = write_csv(tmp_path / "c.csv",
                  "external_id,title,mangoes,cover_image,validity_in_days,enable_drm\n"
                  f"A,,{MANGO},,,\n"  # row 2: no title
                  "B,Two,nope,,,\n"  # row 3: bad mango
                  f"C,Three,{MANGO},not a url,0,perhaps\n"  # row 4: three bad cells
                  f"D,Four,{MANGO},,,\n")
    plan = build_plan([f])
    assert not plan.ok
    assert problems_at(plan, 2, "title") == ["title is required"]
    assert "not a 24-character hexadecimal" in problems_at(plan, 3, "mangoes")[0]
    assert {p.column for p in plan.errors if p.row == 4} == {"cover_image", "validity_in_days", "enable_drm"}
    assert [p.value for p in plan.errors if p.row == 4 and p.column == "enable_drm"] == ["perhaps"]
    assert [i.key for i in plan.rows] == ["D"]
    assert sorted(u.row for u in plan.unsent if u.state == "invalid") == [2, 3, 4]


def test_missing_required_column_suggests_the_closest_header(tmp_path):
    f = write_csv(tmp_path / "c.csv", f"title,mango_list\nIntro,{MANGO}\n")
    plan = build_plan([f])
    [reason] = problems_at(plan, None, "mangoes")
    assert "required column 'mangoes' is missing" in reason and "mango_list" in reason


def test_mapping_and_set(tmp_path):
    f = write_csv(tmp_path / "c.csv", "Course Name,Ref\nIntro,X1\n")
    mapping = tmp_path / "map.yaml"
    mapping.write_text("Course Name: title\nref: external_id\n")
    plan = build_plan([f], Options(mapping=load_mapping(mapping), constants={"mangoes": MANGO}))
    assert plan.ok, plan.problems
    assert plan.rows[0].key == "X1" and plan.rows[0].body == {"title": "Intro", "mangoes": [MANGO]}


def test_json_mapping_and_bad_mapping_targets(tmp_path):
    good = tmp_path / "m.json"
    good.write_text(json.dumps({"Name": "title"}))
    assert load_mapping(good) == {"Name": "title"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("Name: titel\n")
    with pytest.raises(ValueError, match="unknown target column 'titel'"):
        load_mapping(bad)


def test_set_does_not_override_a_filled_cell(tmp_path):
    f = write_csv(tmp_path / "c.csv", f"title,mangoes\nA,{MANGO2}\nB,\n")
    plan = build_plan([f], Options(constants={"mangoes": MANGO}))
    assert [i.body["mangoes"] for i in plan.rows] == [[MANGO2], [MANGO]]


def test_unknown_columns_warn_and_are_kept_for_the_results_file(tmp_path):
    f = write_csv(tmp_path / "c.csv", f"title,mangoes,price\nIntro,{MANGO},499\n")
    plan = build_plan([f])
    assert plan.ok
    assert any("unknown column 'price'" in r for r in problems_at(plan, severity=WARNING))
    assert plan.rows[0].source["price"] == "499" and "price" not in plan.rows[0].body


def test_keys_repeats_and_conflicts(tmp_path):
    f = write_csv(tmp_path / "c.csv",
                  "external_id,title,mangoes\n"
                  f"K1,One,{MANGO}\n"  # 2
                  f"K1,One,{MANGO}\n"  # 3 exact repeat -> skipped + warning
                  f"K2,Two,{MANGO}\n"  # 4
                  f"K2,Two changed,{MANGO}\n"  # 5 conflict -> both invalid
                  f",Three,{MANGO}\n"  # 6 empty key -> title key + warning
                  f",  three ,{MANGO}\n")  # 7 same normalised title, same content? title differs in text -> conflict
    plan = build_plan([f])
    assert [i.key for i in plan.rows] == ["K1"]
    skipped = [u for u in plan.unsent if u.state == "skipped"]
    assert [(u.row, u.reason) for u in skipped] == [(3, "repeat of row 2")]
    assert any("repeats row 2" in r for r in problems_at(plan, 3, severity=WARNING))
    assert "row 5" in problems_at(plan, 4, "external_id")[0] and "row 4" in problems_at(plan, 5, "external_id")[0]
    assert any("normalised title" in r for r in problems_at(plan, 6, "external_id", WARNING))
    assert problems_at(plan, 6, "title") and problems_at(plan, 7, "title")
    assert sorted(u.row for u in plan.unsent if u.state == "invalid") == [4, 5, 6, 7]


# -- chapters --------------------------------------------------------------------------------------


def test_chapter_rows_and_patch_semantics(tmp_path):
    f = write_csv(tmp_path / "ch.csv",
                  "chapter_id,title,content,content_type,is_free,embedded_link,additional_contents\n"
                  f"{CHAPTER_ID},New title,,,,,\n"  # 2: only title
                  f"{CHAPTER_ID.replace('5', '6')},,https://cdn.tagmango.com/v.mp4,video,yes,https://yt.be/x,[]\n"  # 3
                  f"{CHAPTER_ID.replace('5', '7')},,https://cdn.tagmango.com/v.mp4,,,,\n"  # 4 content w/o type
                  f"{CHAPTER_ID.replace('5', '8')},,,,,,\n"  # 5 nothing to update
                  f"{CHAPTER_ID.replace('5', '9')},,https://cdn.tagmango.com/a.gif,gif,,,\n")  # 6 bad type
    plan = build_plan([f])
    bodies = {i.row: i.body for i in plan.rows}
    assert bodies == {2: {"title": "New title"},
                      3: {"content": "https://cdn.tagmango.com/v.mp4", "contentType": "video", "isFree": True,
                          "embeddedLink": "https://yt.be/x", "additionalContents": []}}
    assert "must be given together" in problems_at(plan, 4, "content_type")[0]
    assert "nothing to update" in problems_at(plan, 5)[0]
    assert "allowed: video" in problems_at(plan, 6, "content_type")[0]


def test_chapter_needs_an_id_or_a_ref_and_slot(tmp_path):
    f = write_csv(tmp_path / "ch.csv", "chapter_id,course_ref,chapter_slot,title\n"
                                       f"{CHAPTER_ID},C1,first,x\n,C1,,y\n,,,z\n,C1,third,w\n")
    plan = build_plan([f])
    assert "not both" in problems_at(plan, 2, "chapter_id")[0]
    assert "chapter_slot is needed" in problems_at(plan, 3, "chapter_slot")[0]
    assert "which chapter" in problems_at(plan, 4, "chapter_id")[0]
    assert problems_at(plan, 5, "chapter_slot")


def test_workbook_with_courses_and_chapters_links_refs(tmp_path):
    f = write_xlsx(tmp_path / "cat.xlsx", {
        "Courses": [{"external_id": "C1", "title": "One", "mangoes": MANGO},
                    {"external_id": "", "title": "Two", "mangoes": MANGO}],
        "chapters": [{"course_ref": "C1", "chapter_slot": "first", "title": "Welcome"},
                     {"course_ref": "two", "chapter_slot": "second", "title": "By title"},
                     {"course_ref": "OLD-7", "chapter_slot": "first", "title": "Earlier import"}],
        "Notes": [{"anything": 1}]})
    plan = build_plan([f])
    assert plan.ok, plan.errors
    chapters = {i.row: i for i in plan.rows if i.kind == "chapter"}
    assert chapters[2].parent == "Courses:2" and chapters[2].key == "ref:C1:first"
    assert chapters[3].parent == "Courses:3" and chapters[3].params["course_ref"] == "title:two"
    assert chapters[4].parent is None
    assert any("earlier import" in r for r in problems_at(plan, 4, "course_ref", WARNING))
    assert any(p.sheet == "Notes" and "ignored" in p.reason for p in plan.warnings)


def test_chapter_pointing_at_an_invalid_course_is_invalid(tmp_path):
    f = write_xlsx(tmp_path / "cat.xlsx", {
        "courses": [{"external_id": "C1", "title": "", "mangoes": MANGO}],
        "chapters": [{"course_ref": "C1", "chapter_slot": "first", "title": "x"}]})
    plan = build_plan([f])
    assert "which is invalid" in problems_at(plan, 2, "course_ref")[0]
    assert not plan.rows


def test_two_files_courses_and_chapters(tmp_path):
    courses = write_csv(tmp_path / "a.csv", f"external_id,title,mangoes\nC1,One,{MANGO}\n")
    chapters = write_csv(tmp_path / "b.csv", "course_ref,chapter_slot,description\nC1,second,Hello\n")
    plan = build_plan([chapters, courses])  # order does not matter
    assert plan.ok and [i.kind for i in plan.rows] == ["course", "chapter"]
    assert plan.rows[1].parent == plan.rows[0].row_id
    assert [f["name"] for f in plan.files] == ["b.csv", "a.csv"] and all(len(f["checksum"]) == 64 for f in plan.files)


# -- files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_encodings(tmp_path, encoding):
    f = write_csv(tmp_path / "c.csv", f"title,mangoes\nCafé – “Señor” €,{MANGO}\n", encoding)
    [item] = build_plan([f]).rows
    assert item.title == "Café – “Señor” €"


def test_latin1_fallback(tmp_path):
    f = tmp_path / "c.csv"
    f.write_bytes(b"title,mangoes\nCaf\xe9 \x81," + MANGO.encode() + b"\n")  # 0x81 is undefined in cp1252
    [item] = build_plan([f]).rows
    assert item.title.startswith("Café")


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_delimiters(tmp_path, sep):
    f = write_csv(tmp_path / ("c.tsv" if sep == "\t" else "c.csv"),
                  sep.join(["title", "mangoes", "description"]) + "\n" + sep.join(["A b", MANGO, "x"]) + "\n")
    [item] = build_plan([f]).rows
    assert item.title == "A b" and item.body["description"] == "x"
    assert item.body["mangoes"] == [MANGO]


def test_whitespace_empty_rows_and_columns(tmp_path):
    f = write_csv(tmp_path / "c.csv", f" title , mangoes ,,\n  Intro  , {MANGO} ,,\n,,,\n,,,\nSecond,{MANGO},,\n")
    plan = build_plan([f])
    assert plan.ok and [(i.row, i.title) for i in plan.rows] == [(2, "Intro"), (5, "Second")]


def test_excel_numbers_that_are_ids_stay_text(tmp_path):
    f = write_xlsx(tmp_path / "c.xlsx", {"courses": [{"external_id": 12345, "title": "A", "mangoes": MANGO},
                                                     {"external_id": 1e23, "title": "B", "mangoes": MANGO}]})
    assert [i.key for i in build_plan([f]).rows] == ["12345", "1E+23"]


def test_single_sheet_is_classified_by_columns(tmp_path):
    f = write_xlsx(tmp_path / "c.xlsx", {"Export 2024": [{"chapter_id": CHAPTER_ID, "title": "x"}]})
    assert [i.kind for i in build_plan([f]).rows] == ["chapter"]


def test_unclassifiable_sheet_is_an_error(tmp_path):
    f = write_csv(tmp_path / "c.csv", "foo,bar\n1,2\n")
    plan = build_plan([f])
    assert "cannot tell whether" in plan.errors[0].reason


@pytest.mark.parametrize("name,content,reason", [
    ("empty.csv", b"", "empty"),
    ("empty.xlsx", b"", "empty"),
    ("blob.csv", bytes(range(256)) * 4, "binary"),
    ("locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "password"),
    ("notes.pdf", b"%PDF-1.4\n", "unsupported file type"),
    ("fake.xlsx", b"this is plain text, not a workbook", "not a valid .xlsx"),
])
def test_unreadable_files_raise_a_plain_input_error(tmp_path, name, content, reason):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(InputError) as info:
        build_plan([f])
    assert name in str(info.value)
    assert reason in str(info.value).lower()


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        build_plan([tmp_path / "nope.csv"])


def test_header_only_file_has_no_rows(tmp_path):
    f = write_csv(tmp_path / "c.csv", "title,mangoes\n")
    plan = build_plan([f])
    assert not plan.rows and any("no data rows" in p.reason for p in plan.problems)


def test_plan_round_trips_through_json(tmp_path):
    plan = build_plan([SAMPLES / "catalog.xlsx"])
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.to_dict() == plan.to_dict()


# -- sample data and a real export -----------------------------------------------------------------


def test_sample_catalog_is_valid_and_has_dependent_chapters():
    plan = build_plan([SAMPLES / "catalog.xlsx"])
    assert plan.ok, plan.errors
    s = plan.summary()
    assert s["courses_to_create"] == 20 and s["chapters_to_update"] == 30 and s["waiting_for_parent"] >= 20


def test_sample_csv_pair_matches_the_workbook():
    xlsx = build_plan([SAMPLES / "catalog.xlsx"])
    csv = build_plan([SAMPLES / "catalog_courses.csv", SAMPLES / "catalog_chapters.csv"])
    assert [(i.key, i.body) for i in csv.rows] == [(i.key, i.body) for i in xlsx.rows]


def test_broken_workbook_lists_every_planted_problem():
    plan = build_plan([SAMPLES / "broken.xlsx"])
    assert not plan.ok
    assert len(plan.errors) >= 6
    assert all(p.file == "broken.xlsx" and p.sheet and p.reason for p in plan.errors)
    assert {p.column for p in plan.errors} >= {"title", "mangoes", "content_type"}


@pytest.mark.skipif(not UDEMY.exists(), reason="shared data not present")
def test_udemy_export_with_mapping():
    options = Options(mapping={"course_id": "external_id", "course_title": "title", "subject": "description"},
                      constants={"mangoes": MANGO})
    plan = build_plan([UDEMY], options)
    s = plan.summary()
    assert s["courses_to_create"] + s["invalid_rows"] + s["repeated_rows"] == 3678
    assert s["invalid_rows"] == 2 and s["repeated_rows"] == 4
    conflict = [p for p in plan.errors if p.column == "external_id"]
    assert {p.value for p in conflict} == {"185526"} and {p.row for p in conflict} == {1236, 1475}
    assert all(p.file == "udemy_courses.csv" for p in plan.problems)


# -- the command line ------------------------------------------------------------------------------


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "importer", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_cli_validate_sample_exits_0():
    done = cli("validate", str(SAMPLES / "catalog.xlsx"))
    assert done.returncode == 0, done.stderr
    assert "20 courses to create, 30 chapters to update" in done.stdout


def test_cli_validate_broken_exits_2_and_writes_report(tmp_path):
    report = tmp_path / "problems.csv"
    done = cli("validate", str(SAMPLES / "broken.xlsx"), "--report", str(report))
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    rows = pd.read_csv(report, dtype=str, keep_default_na=False)
    assert list(rows.columns) == ["file", "sheet", "row", "column", "value", "severity", "reason"]
    assert (rows["severity"] == "error").sum() == len(build_plan([SAMPLES / "broken.xlsx"]).errors)


def test_cli_validate_json(tmp_path):
    done = cli("validate", str(SAMPLES / "broken.csv"), "--json")
    data = json.loads(done.stdout)
    assert done.returncode == 2 and data["valid"] is False and data["problems"][0]["file"] == "broken.csv"


def test_cli_unreadable_file_is_one_line(tmp_path):
    f = tmp_path / "x.xlsx"
    f.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    done = cli("validate", str(f))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "x.xlsx" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_bad_mapping_and_set(tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("- not a mapping\n")
    done = cli("validate", str(SAMPLES / "catalog.xlsx"), "--mapping", str(m))
    assert done.returncode == 2 and "--mapping" in done.stderr and "Traceback" not in done.stderr
    done = cli("validate", str(SAMPLES / "catalog.xlsx"), "--set", "mangoes")
    assert done.returncode == 2 and "column=value" in done.stderr


def test_the_plan_sentence_counts_one_thing_in_the_singular(tmp_path):
    one = build_plan([write_csv(tmp_path / "one.csv", f"title,mangoes\nIntro,{MANGO}\nBad,\n")])
    assert one.describe().startswith("1 course to create (0 wait for a row of this import); 1 invalid row, "
                                     "0 repeated rows; 1 error, 0 warnings.")
    two = build_plan([write_csv(tmp_path / "two.csv", f"title,mangoes\nA,{MANGO}\nB,{MANGO}\nB,{MANGO}\n")])
    assert two.describe() == ("2 courses to create (0 wait for a row of this import); 0 invalid rows, 1 repeated "
                              "row; 0 errors, 1 warning.")


def test_problems_come_in_the_order_of_the_rows_they_name():
    """A repeated key is found on its earlier row when the later one is read, a chapter naming an invalid course once
    every sheet is read: listed by sheet, then row, all the same."""
    for path in (SAMPLES / "broken.xlsx", SAMPLES / "broken.csv"):
        for defer in (False, True):
            problems = build_plan([path], defer=defer).problems
            sheets = list(dict.fromkeys(p.sheet for p in problems))
            places = [(sheets.index(p.sheet), p.row or 0) for p in problems]
            assert places == sorted(places), [str(p) for p in problems]
            assert any("same external_id as row 10" in p.reason and p.row == 3 for p in problems)


def test_a_csv_pandas_cannot_read_is_read_again_from_the_file(tmp_path, monkeypatch):
    """The reader frees a CSV's bytes as pandas reads them (issue 23); a row with more fields than the first makes
    pandas give up, and the bytes are read once more for the strict reader: the same rows, and a file that changed
    meanwhile is refused."""
    from importer.ingest import csv_read
    from importer.ingest.columns import known_headers
    from importer.ingest.reader import read_file

    text = f"title,mangoes\nIntro,{MANGO}\nSecond,{MANGO},,\n"  # row 3: two empty fields more than the header
    f = write_csv(tmp_path / "c.csv", text)
    sheet = read_file(f, known_headers()).sheets[0]
    assert sheet.columns["title"] == ("Intro", "Second") and list(sheet.row_numbers) == [2, 3]
    assert [r.title for r in build_plan([f]).rows] == ["Intro", "Second"]

    plain = csv_read._parse_plain

    def changed_meanwhile(*args):
        found = plain(*args)
        f.write_text(text.replace("Intro", "Outro"))
        return found

    monkeypatch.setattr(csv_read, "_parse_plain", changed_meanwhile)
    with pytest.raises(InputError, match="changed while it was being read"):
        read_file(f, known_headers())
