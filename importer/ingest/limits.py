"""How long each field's text may be, checked before the field's own rule runs.

A cell longer than its limit makes the row invalid ("too long"), like any other broken cell. The limits are
generous for real catalogs and far below what would hurt: a 1 MB title is a mistake, not a title. Cells of
unknown columns are only carried into the results file; every cell of a file is capped at
``csv_strict.MAX_CELL_CHARS`` when it is read.
"""

from __future__ import annotations

from collections.abc import Callable

from tasks.operations.cells import CellError

#: Characters per field; a column not listed here gets ``DEFAULT_LIMIT``.
LIMITS = {
    "external_id": 200, "title": 300, "description": 50_000, "mangoes": 10_000, "cover_image": 2_048,
    "validity_in_days": 20, "mango_to_sell": 100, "mangoes_to_show_as_paid": 10_000, "enable_drm": 20,
    "disable_qna": 20, "disable_comments": 20,
    "chapter_id": 100, "course_ref": 300, "chapter_slot": 20, "content": 2_048, "content_type": 20, "is_free": 20,
    "embedded_link": 2_048, "additional_contents": 50_000, "course_id": 100,
    # the curriculum sheet (course trees)
    "course_title": 300, "course_description": 50_000, "module_title": 300, "module_position": 20,
    "chapter_title": 300, "chapter_position": 20, "chapter_description": 50_000,
}
#: Excel's own limit for one cell.
DEFAULT_LIMIT = 32_767


def limit_for(column: str) -> int:
    return LIMITS.get(column, DEFAULT_LIMIT)


def bounded(rule_table: dict[str, Callable[[str], object]],
            cells: dict[str, list[str | None]] | None = None) -> dict[str, Callable[[str], object]]:
    """The same rules, each refusing a too-long text before it runs.

    ``cells`` (column -> its cells), when given, spares the check for the columns whose cells all fit.
    """
    out = {}
    for column, rule in rule_table.items():
        texts = cells.get(column) if cells is not None else None
        fits = texts is not None and max(map(len, filter(None, texts)), default=0) <= limit_for(column)
        out[column] = rule if fits else _bounded(column, rule)
    return out


def _bounded(column: str, rule: Callable[[str], object]) -> Callable[[str], object]:
    limit = LIMITS.get(column, DEFAULT_LIMIT)

    def check(text: str) -> object:
        if len(text) > limit:
            raise CellError(f"too long: {len(text):,} characters (at most {limit:,} for {column})")
        return rule(text)

    return check
