"""The sandbox's data (courses, modules, chapters, assets per host) and its journal on disk.

Every change is appended to ``journal.jsonl`` in the state directory as the full new
version of the entity, so a restarted sandbox (a resumed demo, a requeue the next day)
sees what was created before, as the real TagMango would. A deletion is appended as a
tombstone line ``{"kind": ..., "deleted": id, "host": ...}`` that replay honours.

Objects carry private fields (``_host``, ``_digest``) that the API never shows.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

KINDS = ("course", "module", "chapter", "asset")


def new_object_id() -> str:
    """A 24-hex id shaped like a Mongo ObjectId (timestamp prefix, random rest)."""
    return f"{int(datetime.now(UTC).timestamp()):08x}{secrets.token_hex(8)}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def creator_id(host: str) -> str:
    """A stable fake creator id per host."""
    return hashlib.sha256(host.encode()).hexdigest()[:24]


def body_digest(body: dict) -> str:
    """A short fingerprint of a create request's body, to spot the same create committed twice."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


class Store:
    def __init__(self, state_dir: Path | None = None) -> None:
        self.objects: dict[str, dict[str, dict]] = {kind: {} for kind in KINDS}
        #: kind -> id -> host of every deleted object (for stats; a deleted id is never found again).
        self.deleted: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        self._lock = threading.Lock()
        self._journal = None
        if state_dir is not None:
            state_dir = Path(state_dir)
            state_dir.mkdir(parents=True, exist_ok=True)
            path = state_dir / "journal.jsonl"
            if path.exists():
                self._replay(path)
            self._journal = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the store

    def _replay(self, path: Path) -> None:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a torn last line after a crash
                if "deleted" in entry:
                    self.objects[entry["kind"]].pop(entry["deleted"], None)
                    self.deleted[entry["kind"]][entry["deleted"]] = entry.get("host", "")
                else:
                    self.objects[entry["kind"]][entry["obj"]["_id"]] = entry["obj"]

    def put(self, kind: str, obj: dict) -> dict:
        with self._lock:
            self.objects[kind][obj["_id"]] = obj
            self._append({"kind": kind, "obj": obj})
        return obj

    def delete(self, kind: str, obj_id: str) -> None:
        with self._lock:
            obj = self.objects[kind].pop(obj_id, None)
            if obj is None:
                return
            self.deleted[kind][obj_id] = obj.get("_host", "")
            self._append({"kind": kind, "deleted": obj_id, "host": obj.get("_host", "")})

    def change(self, puts: list[tuple[str, dict]], deletes: list[tuple[str, str]]) -> None:
        """Several puts and deletes as one change: one lock, one journal write, one fsync.

        A crash can still tear the last line of the write; replay skips a torn line, so at worst the
        tail of this change is lost, never a line of a later one.
        """
        entries = []
        with self._lock:
            for kind, obj in puts:
                self.objects[kind][obj["_id"]] = obj
                entries.append({"kind": kind, "obj": obj})
            for kind, obj_id in deletes:
                obj = self.objects[kind].pop(obj_id, None)
                if obj is not None:
                    self.deleted[kind][obj_id] = obj.get("_host", "")
                    entries.append({"kind": kind, "deleted": obj_id, "host": obj.get("_host", "")})
            self._append(*entries)

    def _append(self, *entries: dict) -> None:
        if self._journal is not None and entries:
            self._journal.write("".join(json.dumps(entry) + "\n" for entry in entries))
            self._journal.flush()
            os.fsync(self._journal.fileno())

    def get(self, kind: str, obj_id: str, host: str) -> dict | None:
        obj = self.objects[kind].get(obj_id)
        if obj is None or obj.get("_host") != host:
            return None
        return obj

    def courses_of(self, host: str) -> list[dict]:
        return [c for c in self.objects["course"].values() if c["_host"] == host]

    def has_asset(self, host: str, url: str) -> bool:
        return any(a["url"] == url and a["_host"] in (host, "*") for a in self.objects["asset"].values())

    def add_asset(self, url: str, host: str = "*") -> dict:
        return self.put("asset", {"_id": new_object_id(), "_host": host, "url": url})

    def reset(self) -> None:
        with self._lock:
            for kind in KINDS:
                self.objects[kind].clear()
                self.deleted[kind].clear()
            if self._journal is not None:
                self._journal.seek(0)
                self._journal.truncate()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def public(obj: dict) -> dict:
    """The object as the API returns it: without the sandbox's private fields (``_host``, ``_digest``)."""
    return {k: v for k, v in obj.items() if k == "_id" or not k.startswith("_")}
