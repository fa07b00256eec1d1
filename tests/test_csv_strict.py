"""The strict CSV reader (files with quotes) reads a step of records at a time, from the file's bytes as they are
freed: the same cells and the same refusals, with the same row, line and column, as reading the whole text
record by record (``_parse_tracked`` over all of it, the reference), wherever the steps fall."""

from __future__ import annotations

import random

import pytest

from importer.ingest import csv_read, csv_strict
from importer.ingest.problems import InputError

CELLS = ["plain", "  padded  ", "", '"a, b"', '"two\nlines"', '"quote "" inside"', '"x\r\ny"', "ünï", "3"]
DAMAGE = ['"open', 'x"y', '"a"b', '"z\n1,2,3,4\n"']


def _text(rng: random.Random, rows: int, damaged: bool) -> str:
    width = rng.randint(1, 4)
    lines = []
    for _ in range(rows):
        if rng.random() < 0.05:
            lines.append("")  # a blank line: an empty row
            continue
        cells = [rng.choice(CELLS) for _ in range(width + (rng.random() < 0.1))]
        lines.append(",".join(cells))
    if damaged:
        at = rng.randrange(len(lines))
        lines[at] = ",".join([rng.choice(DAMAGE), *lines[at].split(",")[1:]])
    return rng.choice(["\n", "\r\n"]).join(lines) + rng.choice(["", "\n"])


def _reference(text: str) -> list[list] | str:
    """What reading the whole text record by record gives: columns of trimmed cells, or the refusal."""
    try:
        rows, _ = csv_strict._parse_tracked("f.csv", text, ",")
    except InputError as exc:
        return str(exc)
    width = max(map(len, rows), default=0)
    padded = [[*r, *[None] * (width - len(r))] for r in rows]
    return [[c.strip() if isinstance(c, str) else c for c in col] for col in zip(*padded, strict=True)] if rows else []


def _stepped(text: str, step: int) -> list[list] | str:
    try:
        return [list(c) for c in csv_strict.read_strict("f.csv", csv_strict.text_lines(text), ",", step)]
    except InputError as exc:
        return str(exc)


@pytest.mark.parametrize("seed", range(120))
def test_reading_a_step_at_a_time_gives_what_reading_it_whole_gives(seed):
    rng = random.Random(seed)
    text = _text(rng, rng.randint(1, 40), damaged=seed % 3 == 0)
    expected = _reference(text)
    for step in (1, 2, 3, 7, 1 << 15):
        assert _stepped(text, step) == expected, (step, text)


def test_a_refusal_in_a_later_step_names_its_row_and_line_in_the_file():
    rows = ["title,description", *(f"T{i},\"about {i}, short\"" for i in range(1, 40_000))]
    rows[35_000] = 'T35000,"not closed'  # the next line's first quote closes it: a stray quote follows
    with pytest.raises(InputError) as refused:
        csv_strict.read_strict("big.csv", csv_strict.text_lines("\n".join(rows) + "\n"), ",")
    said = str(refused.value)
    assert "row 35001 (line 35001), column B" in said and "from line 35001 to line 35002" in said
    rows = ["title,description", *(f"T{i},about {i}" for i in range(1, 40_000))]
    rows[36_000] = 'T36000,"never closed'
    with pytest.raises(InputError) as refused:
        csv_strict.read_strict("big.csv", csv_strict.text_lines('a,"b, c"\n' + "\n".join(rows) + "\n"), ",")
    assert "row 36002 (line 36002), column B" in str(refused.value) and "never closed" in str(refused.value)


def test_a_cell_holding_a_whole_row_in_a_later_step_is_refused_where_it_starts():
    rows = ["a,b,c", *(f'{i},"x, {i}",y' for i in range(1, 40_000))]
    rows[33_000] = '33000,"starts here\n1,2,3\n",y'  # lines 33001-33003 are one record: row 33001
    with pytest.raises(InputError) as refused:
        csv_strict.read_strict("big.csv", csv_strict.text_lines("\n".join(rows) + "\n"), ",")
    assert "row 33001 (line 33001), column B" in str(refused.value) and "whole row" in str(refused.value)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "utf-16"])
def test_read_from_the_handed_bytes_as_from_the_text(encoding):
    text = 'title,description\nCafé,"a, b"\nTwo,"line one\nline two"\n\nThree,  plain  \n'
    data = text.encode(encoding)
    decoded, found = csv_read.decode_as("f.csv", data)
    assert found == encoding
    from_text, shared = csv_read.parse("f.csv", decoded, ",")
    handed = [decoded]
    from_bytes, _ = csv_read.parse("f.csv", handed, ",", [data], lambda: data, found)
    assert shared and list(map(list, from_bytes)) == list(map(list, from_text))
    assert list(from_bytes[1]) == ["description", "a, b", "line one\nline two", None, "plain"] and not handed


REFUSALS = {  # what the reader said before it read a step at a time (788bfb1), word for word
    'a,b\n1,"open\n2,3\n': 'row 2 (line 2), column B: a quote opened here is never closed, so every line after it '
                           'would be read into this one cell; close the quote (a quote inside a cell is written '
                           'twice: "")',
    'a,b\n1,"x"y\n': 'row 2 (line 2), column B: text after the closing quote of a quoted cell; put the whole cell in '
                     'quotes, or write a quote inside a cell twice ("")',
    'a,b\n1,"x\n2,3"z\n': 'row 2 (line 2), column B: a quoted cell runs from line 2 to line 3 and ends in a stray '
                          'quote; a quote is probably not closed, which merges the rows after it into this cell',
    'a,b,c\n1,"starts\n1,2,3\n",y\n': "row 2 (line 2), column B: a quoted cell runs over lines 2–4 and holds what "
                                      "looks like a whole row ('1,2,3'); a quote is probably not closed",
}


@pytest.mark.parametrize("text", list(REFUSALS))
def test_each_refusal_says_what_it_said_before_wherever_the_steps_fall(text):
    for step in (1, 2, 1 << 15):
        assert _stepped(text, step) == f"f.csv: {REFUSALS[text]}"
    with pytest.raises(InputError, match="never closed|after the closing|stray|whole row"):
        csv_read.parse("f.csv", text, ",")
