"""The row record and its state machine: JSON round trip, predicates, the transitions table (the store enforcing
it is tests/test_rowstore.py)."""

from __future__ import annotations

from tasks.rows import FINAL, TRANSITIONS, ErrorCode, Place, Row, RowFailure, RowState, sources_of


def make(row_id: str = "courses:2", **kw) -> Row:
    return Row(row_id=row_id, op="create_course", kind="course", file="f.csv", sheet="courses", row=2, key="K1",
               title="T", **kw)


def test_json_round_trip_keeps_types():
    row = make(state=RowState.DEAD, error=RowFailure("X", "why", 400, "PermanentApiError"), ids={"a": "b"},
               history=[{"error_code": "Y"}])
    again = Row.from_json(row.to_json())
    assert again == row and again.state is RowState.DEAD and isinstance(again.error, RowFailure)


def test_a_place_and_a_diff_round_trip_and_rows_stored_with_them_in_params_are_read():
    row = make(place=Place("K1", "K1", 1, 2, 3), diff={"title": ["a", "b"]}, params={"chapter_slot": "first"})
    assert Row.from_json(row.to_json()) == row
    # As a job in flight during an upgrade stored them: a lesson waiting for its parent, a lesson matching made an
    # update of, a delete, and a chapter patch (its course_ref is the sheet's, not a place).
    old = make().to_dict()
    del old["place"], old["diff"]
    waiting = {"place": "chapter", "index": 1, "course_ref": "K1", "course_key": "K1", "module_position": 2,
               "chapter_position": 2, "takeover": True}
    assert Row.from_dict(old | {"params": waiting}).place == Place("K1", "K1", 1, 2, 2, takeover=True)
    matched = {"index": 0, "course_ref": "K1", "course_key": "K1", "module_position": 1, "lessons": 3,
               "diff": {"title": ["a", "b"]}}
    again = Row.from_dict(old | {"params": matched})
    assert again.place == Place("K1", "K1", 0, 1, lessons=3, by_parent=False) and again.diff == {"title": ["a", "b"]}
    assert again.params == {} and not again.placed_by_parent
    assert Row.from_dict(old | {"params": {"course_key": "K1"}}).place == Place("K1", by_parent=False)
    patch = Row.from_dict(old | {"params": {"course_ref": "K1", "chapter_slot": "first"}})
    assert patch.place is None and patch.params == {"course_ref": "K1", "chapter_slot": "first"}


def test_unknown_fields_in_stored_json_are_ignored():
    data = make().to_dict() | {"some_future_field": 1}
    assert Row.from_dict(data) == make()


def test_predicates():
    assert make(parent="courses:3").waiting_for_parent
    assert not make(parent="courses:3", released=True).waiting_for_parent
    assert not make(parent="courses:3", state=RowState.DEAD).waiting_for_parent
    assert make(state=RowState.DEAD, error=RowFailure(ErrorCode.DEPENDENCY_FAILED, "")).died_of_parent
    assert make(state=RowState.SKIPPED).done and make(state=RowState.SKIPPED).is_final
    assert not make(state=RowState.DEAD).done


def test_final_states_go_nowhere_but_dead_goes_back_to_the_queue():
    assert all(not TRANSITIONS[s] for s in FINAL - {RowState.DEAD})
    assert TRANSITIONS[RowState.DEAD] == {RowState.QUEUED, RowState.SKIPPED}  # requeue, or found done on requeue
    assert sources_of(RowState.SUCCEEDED) == {RowState.RUNNING}
