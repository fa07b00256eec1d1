"""The sandbox's own routes under ``/_sandbox/``: stats, raw data, course trees, assets, live config, reset.

These are not TagMango's; they let tests and operators see what the sandbox received and holds.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from importer.sandbox.answers import read_json
from importer.sandbox.core import Sandbox
from importer.sandbox.store import public

#: The chapter fields a tree shows (what a spreadsheet can ask for), in this order.
TREE_CHAPTER_FIELDS = ("_id", "title", "description", "content", "contentType", "isFree", "embeddedLink",
                       "additionalContents")


class Inspection:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    async def stats(self, request: Request) -> Response:
        store = self.sb.store
        snap = self.sb.traffic.snapshot()
        titles: dict[str, Counter] = defaultdict(Counter)
        for course in store.objects["course"].values():
            titles[course["_host"]][course["title"]] += 1
        snap["courses_by_host"] = {h: sum(c.values()) for h, c in titles.items()}
        snap["duplicate_titles"] = {h: {t: n for t, n in c.items() if n > 1} for h, c in titles.items()
                                    if any(n > 1 for n in c.values())}
        snap["objects_by_host"] = objects_by_host(store)
        snap["duplicate_creates"] = duplicate_creates(store)
        snap["config"] = self.sb.config.fault_settings()
        snap["pid"] = os.getpid()  # which process answers on the port (importer.local.stack)
        return JSONResponse(snap)

    async def arrivals(self, request: Request) -> Response:
        return JSONResponse(self.sb.traffic.arrivals)

    async def dump(self, request: Request) -> Response:
        host = request.query_params.get("host")
        if request.query_params.get("tree") in ("1", "true"):
            return await self.tree(request)
        out = {kind: [obj for obj in objs.values() if host is None or obj["_host"] == host]
               for kind, objs in self.sb.store.objects.items()}
        return JSONResponse(out)

    async def tree(self, request: Request) -> Response:
        host = request.query_params.get("host", "").strip().lower()  # as the API reads x-whitelabel-host
        if not host:
            return JSONResponse({"error": "send ?host=H (the x-whitelabel-host whose courses to show)"},
                                status_code=400)
        return JSONResponse({"host": host, "courses": course_trees(self.sb.store, host)})

    async def register_asset(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            return JSONResponse({"error": "send {\"url\": ..., \"host\": optional}"}, status_code=400)
        return JSONResponse(self.sb.store.add_asset(body["url"], body.get("host") or "*"))

    async def set_config(self, request: Request) -> Response:
        try:
            self.sb.config.update_faults(await read_json(request) or {})
        except (ValueError, TypeError, IndexError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.sb.config.fault_settings())

    async def reset(self, request: Request) -> Response:
        self.sb.store.reset()
        self.sb.traffic.reset()
        return JSONResponse({"reset": True})


def course_trees(store, host: str) -> list[dict]:  # noqa: ANN001 - a Store
    """The host's courses in creation order, each with its modules and their chapters in order."""
    modules, chapters = store.objects["module"], store.objects["chapter"]
    trees = []
    for course in store.courses_of(host):
        tree = {k: v for k, v in public(course).items() if k != "modules"}
        tree["modules"] = []
        for module_id in course["modules"]:
            module = modules.get(module_id)
            if module is None:
                continue
            tree["modules"].append({"_id": module_id, "title": module["title"], "chapters": [
                {key: chapters[c].get(key) for key in TREE_CHAPTER_FIELDS}
                for c in module["chapters"] if c in chapters]})
        trees.append(tree)
    return trees


def objects_by_host(store) -> dict:  # noqa: ANN001 - a Store
    """``{host: {courses, modules, chapters, deleted_chapters}}``: what each host holds now."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"courses": 0, "modules": 0, "chapters": 0,
                                                          "deleted_chapters": 0})
    for kind in ("course", "module", "chapter"):
        for obj in store.objects[kind].values():
            out[obj["_host"]][kind + "s"] += 1
    for host in store.deleted["chapter"].values():
        out[host]["deleted_chapters"] += 1
    return dict(out)


def duplicate_creates(store) -> dict:  # noqa: ANN001 - a Store
    """Modules and chapters that more than one committed create with the same body made in the same parent.

    ``{host: {course_id: {"modules": [{"title", "count"}], "chapters": [{"module", "title", "count"}]}}}``,
    only where there is one. The placeholders of Create Course have no create body and never count.
    A file that really has two identical lessons in one module shows up here too: read it as
    "look at this", not as proof of a retry gone wrong.
    """
    groups: Counter = Counter()
    sample: dict[tuple, dict] = {}
    for kind, parent in (("module", "course"), ("chapter", "module")):
        for obj in store.objects[kind].values():
            if "_digest" in obj:
                key = (kind, obj["_host"], obj["course"], obj[parent], obj["_digest"])
                groups[key] += 1
                sample.setdefault(key, obj)
    out: dict[str, dict] = {}
    for key, count in groups.items():
        if count < 2:
            continue
        kind, host, course_id, parent_id, _ = key
        entry = out.setdefault(host, {}).setdefault(course_id, {"modules": [], "chapters": []})
        if kind == "module":
            entry["modules"].append({"title": sample[key]["title"], "count": count})
        else:
            entry["chapters"].append({"module": parent_id, "title": sample[key]["title"], "count": count})
    return out
