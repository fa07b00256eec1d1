"""Which rows of a sheet validation may defer (``importer.ingest.deferred``): those whose key the sheet kind's
columnar check finds plain (``SheetKind.plain_keys``) and that no other row shares; every other row is drafted."""

from __future__ import annotations

from collections import Counter

import numpy as np

from importer.ingest import cellrules
from tasks.operations import SheetKind


def screen(cells: cellrules.Outcomes, sheet_kind: SheetKind, present: set[str]) \
        -> tuple[list[int], list[str | None]] | None:
    """The indexes of the rows to draft (a key that is None or not unique), and every row's plain key (None:
    drafted); None: draft them all."""
    keys = sheet_kind.plain_keys(cells.values, present, len(cells.sheet.row_numbers))
    if keys is None:
        return None
    for i in cells.failed():
        keys[i] = None
    return not_unique(keys), keys


def not_unique(keys: list[str | None]) -> list[int]:
    """Indexes of the keys that are None or occur more than once, in order. By their hashes first (numpy, 8 bytes
    a key: no set or Counter of a million keys beside the sheet, issue 23), then exactly among the keys whose hash
    is not unique."""
    hashes = np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))
    order = np.argsort(hashes, kind="stable")
    ranked = hashes[order]
    del hashes
    same = ranked[1:] == ranked[:-1]
    shared = np.zeros(len(keys), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    maybe = order[shared].tolist()
    del order, ranked, same, shared
    counts = Counter(keys[i] for i in maybe)
    found = {i for i in maybe if keys[i] is None or counts[keys[i]] > 1}
    if None in keys:
        found.update(i for i, k in enumerate(keys) if k is None)
    return sorted(found)
