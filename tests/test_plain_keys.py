"""Validation defers the rows a sheet kind's columnar check finds plain instead of building them
(``SheetKind.plain_keys``): it must report exactly what building every row reports, and ``run`` must send exactly
the rows building every row gives (``Plan.chunks``).

Pure logic (reading and planning files, no services): each file is planned both ways and the problems (in order),
the summary and the sentence compared.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from importer.ingest.validate import Options, build_plan
from tasks.enqueue import rows_for
from tasks.rows import Row
from tests.hostile_files import MANGO, ROOT, write_csv

COURSE_TREES = ROOT.parent / "shared" / "data" / "course_trees"


def both_ways(paths: list[Path], options: Options | None = None) -> tuple:
    built, counted = build_plan(paths, options), build_plan(paths, options, defer=True)
    assert [p.as_dict() for p in counted.problems] == [p.as_dict() for p in built.problems]
    assert counted.summary() == built.summary()
    assert counted.describe() == built.describe()
    assert counted.ok == built.ok
    # What is sent: the deferred rows built chunk by chunk (``run``) are the rows building them all gives, in order.
    expected = [as_sent(r) for r in rows_for(built)]
    for size in (7, 5000):
        chunks = list(counted.chunks(size))
        assert [as_sent(r) for chunk in chunks for r in chunk] == expected
        if not any(r.parent or r.place for r in built.rows):
            assert all(len(chunk) == size for chunk in chunks[:-1])
    return built, counted


def as_sent(row: Row) -> dict:
    return {k: v for k, v in row.to_dict().items() if k != "finished_at"}


def messy_courses(rng: random.Random, n: int) -> tuple[list[str], list[list[str]]]:
    """Course rows with what makes a row not plain, mixed in at random: empty or repeated external_ids (same or
    other content), an external_id that is another row's title key, missing titles or mangoes, cells that break
    their rule."""
    header = ["external_id", "title", "mangoes", "description", "enable_drm", "validity_in_days"]
    rows = []
    for i in range(n):
        external_id, title = f"K{i}", f"Course {i}"
        mangoes, description, drm, days = MANGO, f"About {i}", rng.choice(["", "yes", "no"]), ""
        roll = rng.random()
        if roll < 0.08:
            external_id = ""
        elif roll < 0.14:
            external_id = f"K{rng.randrange(max(i, 1))}"  # a repeat; the same content when the row matches
            if rng.random() < 0.5 and rows:
                rows.append(list(next((r for r in rows if r[0] == external_id), rows[-1])))
                continue
        elif roll < 0.17:
            external_id = f"title:course {rng.randrange(n)}"  # the key an empty external_id's row gets
        elif roll < 0.20:
            title = ""
        elif roll < 0.23:
            mangoes = rng.choice(["", "not-a-mango"])
        elif roll < 0.26:
            drm = "perhaps"
        elif roll < 0.29:
            days = rng.choice(["0", "ten", "30"])
        rows.append([external_id, title, mangoes, description, drm, days])
    return header, rows


def messy_chapters(rng: random.Random, n: int) -> tuple[list[str], list[list[str]]]:
    """Chapter rows named by chapter_id, some by course_ref + chapter_slot (or both, or half of it), with content
    without its type, nothing to update, broken ids and repeats mixed in."""
    header = ["chapter_id", "course_ref", "chapter_slot", "title", "content", "content_type", "is_free"]
    rows = []
    for i in range(n):
        chapter_id, ref, slot = f"{i:024x}", "", ""
        title, content, content_type, free = f"Lesson {i}", "", "", rng.choice(["", "yes"])
        roll = rng.random()
        if roll < 0.08:
            chapter_id, ref, slot = "", f"C{rng.randrange(5)}", rng.choice(["first", "second"])
        elif roll < 0.11:
            ref = "C1"
        elif roll < 0.14:
            chapter_id, slot = "", "first"
        elif roll < 0.18:
            content = "https://cdn.example.com/v.mp4"
            content_type = rng.choice(["", "video"])
        elif roll < 0.21:
            title, free = "", ""
        elif roll < 0.24:
            chapter_id = rng.choice(["xyz", f"{rng.randrange(max(i, 1)):024x}"])  # broken, or a repeat
        elif roll < 0.26 and rows:
            rows.append(list(rows[rng.randrange(len(rows))]))
            continue
        rows.append([chapter_id, ref, slot, title, content, content_type, free])
    return header, rows


MESSY = {"courses": (messy_courses, "create_course"), "chapters": (messy_chapters, "update_chapter")}


@pytest.mark.parametrize(("sheet", "seed"), [("courses", s) for s in range(40)] + [("chapters", s) for s in range(20)])
def test_counting_plain_rows_reports_what_building_every_row_reports(tmp_path: Path, sheet: str, seed: int) -> None:
    messy, op = MESSY[sheet]
    rng = random.Random(seed)
    header, rows = messy(rng, rng.choice([5, 30, 200]))
    path = write_csv(tmp_path / f"{sheet}.csv", rows, header)
    built, counted = both_ways([path])
    assert counted.counted[op] + len(counted.rows) == len(built.rows)


def test_chapters_named_by_id_are_counted_beside_a_courses_sheet(tmp_path: Path) -> None:
    """Courses that chapters of the import name are built (linking needs them); the chapters named by id are
    counted, the ones named by course_ref + chapter_slot drafted and linked."""
    courses = write_csv(tmp_path / "courses.csv", [[f"C{i}", f"Course {i}", MANGO] for i in range(3)],
                        ["external_id", "title", "mangoes"])
    chapters = [[f"{i:024x}", "", "", f"Lesson {i}"] for i in range(50)] + [["", "C1", "second", "Two"]]
    path = write_csv(tmp_path / "chapters.csv", chapters, ["chapter_id", "course_ref", "chapter_slot", "title"])
    built, counted = both_ways([courses, path])
    assert counted.counted == {"update_chapter": 50}
    assert built.summary()["waiting_for_parent"] == 1 == counted.summary()["waiting_for_parent"]


def test_a_clean_sheet_is_counted_not_built(tmp_path: Path) -> None:
    rows = [[f"K{i}", f"Course {i}", MANGO, f"About {i}"] for i in range(500)]
    path = write_csv(tmp_path / "courses.csv", rows, ["external_id", "title", "mangoes", "description"])
    built, counted = both_ways([path])
    assert counted.counted["create_course"] == 500 and not counted.rows
    assert len(built.rows) == 500


def test_a_header_without_rows_has_no_data_rows_either_way(tmp_path: Path) -> None:
    built, counted = both_ways([write_csv(tmp_path / "c.csv", [], ["external_id", "title", "mangoes"])])
    assert not counted.ok and not counted.deferred
    assert [p.reason for p in counted.errors] == ["no data rows to import"]


def test_title_keys_without_an_external_id_column_are_counted_and_repeats_told_apart(tmp_path: Path) -> None:
    rows = [[f"Course {i % 300}", MANGO] for i in range(320)]  # the last 20 repeat earlier titles exactly
    rows[-1][0] = "COURSE  250"  # row 252's normalised title, another content: both rows are invalid
    path = write_csv(tmp_path / "courses.csv", rows, ["title", "mangoes"])
    built, counted = both_ways([path])
    assert counted.counted["create_course"] == 280
    assert (built.summary()["repeated_rows"], built.summary()["invalid_rows"]) == (19, 2)


def test_a_drafted_row_whose_key_a_counted_row_has_makes_the_sheet_drafted(tmp_path: Path) -> None:
    """Row 2's empty external_id gives it the key ``title:intro``, which row 3 gives as its external_id."""
    rows = [["", "Intro", MANGO], ["title:intro", "Intro", MANGO], ["K3", "Other", MANGO]]
    path = write_csv(tmp_path / "courses.csv", rows, ["external_id", "title", "mangoes"])
    built, counted = both_ways([path])
    assert not counted.counted
    assert any("repeats row" in p.reason for p in built.problems)


def test_constants_and_a_mapping_count_the_same(tmp_path: Path) -> None:
    rows = [[f"K{i}", f"Course {i}", ""] for i in range(50)] + [["K7", "Course 7", ""]]
    path = write_csv(tmp_path / "courses.csv", rows, ["id", "name", "desc"])
    options = Options(mapping={"id": "external_id", "name": "title", "desc": "description"},
                      constants={"mangoes": MANGO})
    _, counted = both_ways([path], options)
    assert counted.counted["create_course"] == 49


@pytest.mark.parametrize("constant", ["title", "external_id"])
def test_an_empty_set_constant_is_looked_at_as_draft_looks_at_it(tmp_path: Path, constant: str) -> None:
    """``--set title=`` fills empty cells with "": not a title (an error on every such row); ``--set
    external_id=``: not a key (the title is, with a warning)."""
    rows = [["C1", "One", MANGO], ["", "Two", MANGO], ["C3", "", MANGO]]
    path = write_csv(tmp_path / "courses.csv", rows, ["external_id", "title", "mangoes"])
    built, _ = both_ways([path], Options(constants={constant: ""}))
    assert built.problems
    columnless = write_csv(tmp_path / "bare.csv", [["C1", MANGO], ["C2", MANGO]], ["external_id", "mangoes"])
    built, _ = both_ways([columnless], Options(constants={"title": ""}))
    assert not built.ok


def test_courses_beside_a_curriculum_are_built(tmp_path: Path) -> None:
    """A curriculum finds its courses among the plan's rows (a courses sheet plus a curriculum, README): courses
    only counted would leave it without them (its rows would be invalid, or a course made twice)."""
    from tests.hostile_files import write_xlsx

    for title in ("Python 101", "Another title"):
        book = write_xlsx(tmp_path / f"book {title}.xlsx", {
            "courses": [["external_id", "title", "mangoes"], ["C1", "Python 101", MANGO]],
            "curriculum": [["course_ref", "course_title", "module_title", "chapter_title", "chapter_description"],
                           ["C1", title, "Basics", "Hello", "intro"]]})
        built, counted = both_ways([book])
        assert not counted.counted


def test_the_sample_files_report_the_same() -> None:
    samples = ROOT / "sample_data"
    for files in ([samples / "catalog.xlsx"], [samples / "catalog_fixed.xlsx"], [samples / "broken.csv"],
                  [samples / "broken.xlsx"], [samples / "catalog_courses.csv", samples / "catalog_chapters.csv"],
                  [samples / "catalog.results.xlsx"] if (samples / "catalog.results.xlsx").exists() else []):
        if files:
            both_ways(files)


@pytest.mark.skipif(not COURSE_TREES.exists(), reason="the shared course trees are not on this machine")
def test_real_course_trees_report_the_same() -> None:
    trees = sorted(COURSE_TREES.glob("*.csv"))
    both_ways(trees, Options(constants={"mangoes": MANGO}))


def test_courses_named_by_chapters_of_the_same_import_are_built(tmp_path: Path) -> None:
    """Chapters that name a course row of this import are linked to it: such courses cannot only be counted."""
    samples = ROOT / "sample_data"
    built, counted = both_ways([samples / "catalog_courses.csv", samples / "catalog_chapters.csv"])
    assert "create_course" not in counted.counted and counted.rows
    assert built.summary()["waiting_for_parent"] > 0


class Colliding(str):
    """A key whose hash is every other one's: only the exact comparison tells them apart."""

    def __hash__(self) -> int:
        return 7


@pytest.mark.parametrize("seed", range(20))
def test_keys_not_unique_are_found_by_hash_then_exactly(seed):
    """``not_unique`` (the screen's check, by hashes in numpy) finds what a Counter finds: None and repeats."""
    from collections import Counter

    from importer.ingest.screen import not_unique

    rng = random.Random(seed)
    make = Colliding if seed % 2 else str
    keys = [None if rng.random() < 0.05 else make(f"K{rng.randrange(60)}") for _ in range(rng.randrange(1, 80))]
    counts = Counter(keys)
    assert not_unique(keys) == [i for i, k in enumerate(keys) if k is None or counts[k] > 1]
    assert not_unique([make("a"), make("b"), None]) == [2]
