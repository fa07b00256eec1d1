"""The stored row record (tasks.rowcodec): every field round-trips, shared parts stored once per job, plain ``Row``
dicts (records written before the codec) still read, and the dispatcher's ``attempts`` keeps its name. Pure logic."""

from __future__ import annotations

import json

import pytest

from tasks import rowcodec
from tasks.rowcodec import Templates
from tasks.rows import Place, Row, RowFailure, RowState


def make(row_id: str = "courses:2", **kw) -> Row:
    base = dict(op="create_course", kind="course", file="f.csv", sheet="courses", row=2, key="K1", title="T",
                body={"title": "T", "mangoes": ["m1"]}, source={"external_id": "K1", "title": "T", "mangoes": "m1"})
    return Row(row_id=row_id, **{**base, **kw})


FULL = dict(state=RowState.DEAD, error=RowFailure("X", "why", 400, "PermanentApiError"), ids={"a": "b"},
            history=[{"error_code": "Y"}], place=Place("K1", "K1", 1, 2, 3), diff={"title": ["a", "b"]},
            params={"chapter_slot": "first"}, parent="courses:1", released=True, result={"courseId": "c"},
            reason="r", outcome="created", attempts=3, round_attempts=1, requeues=2, gen=4, sent_at=1.5,
            adopted=True, derived=True, next_attempt_at=2.5, finished_at=3.5, updated_at=4.5)


@pytest.mark.parametrize("with_templates", [True, False])
@pytest.mark.parametrize("fields", [{}, FULL, {"source": {}}, {"source": {"b": "2", "a": None}}])
def test_every_field_round_trips(with_templates, fields):
    row = make(**fields)
    raw, templates = stored(row, with_templates)
    assert rowcodec.decode(row.row_id, raw, templates) == row


def stored(row: Row, with_templates: bool) -> tuple[str, Templates]:
    """The row's record, and the templates a reader gets back from Redis (its own when ``with_templates``)."""
    templates = Templates()
    if with_templates:
        templates.add(row)
    return rowcodec.encode(row, templates), Templates.from_json(templates.to_json())


def test_shared_parts_are_stored_once_and_defaults_not_at_all():
    templates = Templates()
    rows = [make(f"courses:{i}", row=i, key=f"K{i}") for i in range(3)]
    assert [templates.add(r) for r in rows] == [True, False, False]
    raw = json.loads(rowcodec.encode(rows[1], templates))
    assert raw == {"t": 0, "row": 1, "key": "K1", "title": "T", "body": {"title": "T", "mangoes": ["m1"]},
                   "source": ["K1", "T", "m1"]}
    # Another sheet (other columns) is another template; a row whose columns differ is written in full.
    other = make("chapters:2", op="patch_chapter", kind="chapter", sheet="chapters", source={"chapter_id": "c"})
    assert templates.add(other) and json.loads(rowcodec.encode(other, templates))["t"] == 1
    changed = make("courses:9", op="update_course")
    assert "t" not in json.loads(rowcodec.encode(changed, templates))
    assert rowcodec.decode("courses:9", rowcodec.encode(changed, templates), templates) == changed


def test_records_written_before_the_codec_still_read():
    row = make(**FULL)
    legacy = row.to_dict()
    del legacy["row_id"]
    assert rowcodec.decode(row.row_id, json.dumps(legacy), Templates()) == row
    assert rowcodec.decode(row.row_id, row.to_json(), None) == row


def test_a_record_from_before_places_still_moves_them_out_of_params():
    old = make().to_dict()
    del old["place"], old["diff"]
    old["params"] = {"diff": {"title": ["a", "b"]}, "course_key": "K1", "index": 1, "place": "chapter"}
    row = rowcodec.decode("courses:2", json.dumps(old), Templates())
    assert row.diff == {"title": ["a", "b"]} and row.place == Place("K1", index=1, by_parent=True) and not row.params


def test_attempts_keeps_its_name_for_the_dispatchers_lua():
    assert json.loads(rowcodec.encode(make(attempts=2), None))["attempts"] == 2
    assert "attempts" not in json.loads(rowcodec.encode(make(), None))


def test_a_record_naming_a_template_the_reader_lacks_is_an_error_not_a_wrong_row():
    templates = Templates()
    row = make()
    templates.add(row)
    with pytest.raises(LookupError):
        rowcodec.decode(row.row_id, rowcodec.encode(row, templates), Templates())


@pytest.mark.parametrize("with_templates", [True, False])
@pytest.mark.parametrize("fields", [{}, FULL, {"state": RowState.SUCCEEDED}, {"parent": "courses:1"},
                                    {"parent": "courses:1", "released": True},
                                    {"parent": "courses:1", "state": RowState.DEAD}, {"title": "x\u2013y"}])
def test_a_glance_says_what_decoding_the_row_says(with_templates, fields):
    """What publishing reads of a stored row without building it (``glance``) agrees with the row."""
    row = make(**fields)
    raw, templates = stored(row, with_templates)
    seen = rowcodec.glance(row.row_id, raw, templates)
    assert seen == (row.row_id, row.op, row.title, row.state, row.waiting_for_parent, 0)  # (gen: the store sets it)
    if with_templates:  # a record naming a template the reader lacks is an error, as for decode
        with pytest.raises(LookupError):
            rowcodec.glance(row.row_id, raw, Templates())
