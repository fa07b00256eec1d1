"""HTML of the dashboard, server-rendered: a layout, the jobs list and one job's page. No JavaScript;
a page refreshes itself (``<meta http-equiv=refresh>``) while its job runs."""

from __future__ import annotations

import time
from html import escape
from urllib.parse import quote

from importer.dashboard.data import DeadGroup, JobSummary
from tasks import operations

#: Seconds between refreshes of a page whose job is running.
REFRESH_S = 2
#: The bar's segments, in order, with their colours.
SEGMENTS = (("succeeded", "#2e7d32"), ("skipped", "#81c784"), ("dead", "#c62828"), ("invalid", "#8d6e63"),
            ("retrying", "#f9a825"), ("running", "#1565c0"), ("queued", "#b0bec5"))

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2733;background:#f5f7fa}
header{background:#1d2733;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfe3ff;text-decoration:none}header .brand{font-weight:600;color:#fff}
main{padding:16px 24px;max-width:1100px}
h1{font-size:20px;margin:6px 0 2px}h2{font-size:16px;margin:22px 0 8px}
.meta{color:#5b6775}.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:12px 16px;margin:10px 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e8ecf1;vertical-align:top}
th{font-weight:600;color:#5b6775;font-size:12px;text-transform:uppercase}
.bar{display:flex;height:16px;border-radius:3px;overflow:hidden;background:#eceff1;min-width:160px}
.bar span{display:block;height:100%}.legend span{margin-right:12px;white-space:nowrap}
.dot{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.num{font-variant-numeric:tabular-nums}.badge{padding:1px 7px;border-radius:9px;font-size:12px;color:#fff}
.running{background:#1565c0}.final{background:#455a64}.blocked{background:#c62828}
.flash{background:#e8f5e9;border-color:#a5d6a7}.warn{background:#fff8e1;border-color:#ffe082}
.error{background:#ffebee;border-color:#ef9a9a}
code{background:#eef1f5;padding:0 4px;border-radius:3px}
button{background:#1565c0;color:#fff;border:0;border-radius:4px;padding:5px 12px;cursor:pointer}
.chart{width:100%;height:auto}.chart .grid{stroke:#e3e8ee}.chart .axis{font-size:11px;fill:#5b6775}
.chart .limit{stroke:#c62828;stroke-dasharray:6 4;stroke-width:1.5}.chart .limit-label{font-size:11px;fill:#c62828}
.chart .sent{stroke:#1565c0;stroke-width:2}.chart .own{stroke:#90caf9;stroke-width:2}
.chart .r429{fill:#c62828}.chart .retry{fill:#f9a825}
.group{margin-bottom:14px}.group h3{margin:0 0 4px;font-size:15px}.rows td{font-size:13px}
"""


def layout(title: str, body: str, *, refresh_to: str | None = None, flower_url: str | None = None) -> str:
    refresh = f'<meta http-equiv="refresh" content="{REFRESH_S}; url={escape(refresh_to)}">' if refresh_to else ""
    flower = f'<a href="{escape(flower_url)}/tasks">Flower</a>' if flower_url else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}<title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body><header><a class="brand" href="/">tagmango-import</a><a href="/">Jobs</a>{flower}</header>'
            f"<main>{body}</main></body></html>")


def bar(counts: dict[str, int], total: int, element_id: str = "") -> str:
    total = max(total, 1)
    spans = "".join(f'<span style="width:{100 * counts.get(s, 0) / total:.2f}%;background:{c}" '
                    f'title="{s} {counts.get(s, 0)}"></span>' for s, c in SEGMENTS if counts.get(s, 0))
    ident = f' id="{element_id}"' if element_id else ""
    return f'<div class="bar"{ident}>{spans}</div>'


def legend(counts: dict[str, int], prefix: str = "count") -> str:
    return '<div class="legend">' + "".join(
        f'<span><i class="dot" style="background:{c}"></i>{s} '
        f'<b class="num" id="{prefix}-{s}">{counts.get(s, 0)}</b></span>' for s, c in SEGMENTS) + "</div>"


def status_badge(job: JobSummary) -> str:
    if job.blocked and not job.final:
        return '<span class="badge blocked">credential refused</span>'
    return '<span class="badge final">finished</span>' if job.final else '<span class="badge running">running</span>'


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# -- the jobs list ---------------------------------------------------------------------------------


def jobs_page(jobs: list[JobSummary], flower_url: str | None) -> str:
    rows = "".join(
        f'<tr class="job" data-job="{escape(j.id)}"><td><a href="/jobs/{quote(j.id)}">{escape(j.id)}</a><br>'
        f'<span class="meta">{escape(j.label)}</span></td><td>{escape(j.host)}</td><td>{when(j.created_at)}</td>'
        f'<td class="num">{j.done}/{j.total}</td><td>{bar(j.counts, j.total)}</td>'
        f'<td class="num">{j.counts["succeeded"]}</td><td class="num">{j.counts["dead"]}</td>'
        f"<td>{status_badge(j)}</td></tr>"
        for j in jobs)
    body = ("<h1>Imports</h1>" + (
        f'<div class="card"><table id="jobs"><tr><th>job</th><th>host</th><th>started</th><th>done</th>'
        f"<th>progress</th><th>succeeded</th><th>dead</th><th></th></tr>{rows}</table></div>"
        if jobs else '<div class="card">No imports yet: <code>tagmango-import run FILE</code></div>'))
    running = any(not j.final for j in jobs)
    return layout("Imports · tagmango-import", body, refresh_to="/" if running else None, flower_url=flower_url)


# -- one job ---------------------------------------------------------------------------------------


def job_page(job: JobSummary, *, kinds: dict[str, dict[str, int]], groups: list[DeadGroup], chart_svg: str,
             eta_s: float, limit_per_s: float, other_jobs: int, csrf: str, results_name: str,
             flower_url: str | None, flash: str = "", flash_kind: str = "flash", undo: str = "") -> str:
    path = f"/jobs/{quote(job.id)}"
    head = (f'<h1 id="job-id">{escape(job.id)} {status_badge(job)}</h1>'
            f'<div class="meta">{escape(job.label)} · host <b>{escape(job.host)}</b> · {escape(job.api_url)} · '
            f"started {when(job.created_at)}</div>")
    if flash:
        head += f'<div class="card {flash_kind}" id="flash">{escape(flash)}</div>'
    if job.blocked:
        b = job.blocked.failure
        head += (f'<div class="card error">The credential was refused ({escape(str(b.http_status or ""))} '
                 f'{escape(str(b.code or ""))} {escape(str(b.message or ""))}): rows are parked as '
                 "<code>CREDENTIAL_REFUSED</code>. Fix the token, then requeue them below.</div>")
    for kind, text in sorted(job.notices.items()):
        head += f'<div class="card warn" id="notice-{escape(kind)}">{escape(text)}</div>'
    if job.duplicates:
        items = "".join(f"<li>{escape(str(d.get('sheet')))} row {escape(str(d.get('line')))}: "
                        f"{escape(str(d.get('message')))}</li>" for d in job.duplicates)
        head += (f'<div class="card error" id="duplicates"><b><code>DUPLICATE_IN_TAGMANGO</code>: '
                 f"{len(job.duplicates)} course(s) of this job are in TagMango more than once.</b> Keep one of each "
                 "and delete the other in TagMango; machines importing for the same creator must share one "
                 f"<code>TAGMANGO_REDIS_URL</code>.<ul>{items}</ul></div>")
    t = job.tallies
    eta = "" if job.final else f" · ETA <b id='eta'>{duration(eta_s)}</b> at {limit_per_s:.1f} requests/s"
    progress = (f'<h2>Progress</h2><div class="card"><div class="num" id="progress-text"><b>{job.done}</b> of '
                f"<b>{job.total}</b> rows done{eta}</div>{bar(job.counts, job.total, 'progress-bar')}"
                f"{legend(job.counts)}<div class='meta'>requests sent <b class='num' id='n-requests'>"
                f"{t.get('requests', 0)}</b> · retries <b class='num' id='n-retries'>{t.get('retries', 0)}</b> · "
                f"429s <b class='num' id='n-429'>{t.get('rate_limited', 0)}</b> · creates found after a lost "
                f"answer {t.get('adopted', 0)}</div>")
    for kind, counts in sorted(kinds.items(), key=lambda item: (operations.kind_rank(item[0]), item[0])):  # tree order
        total = sum(counts.values())
        progress += (f'<h2 style="margin-top:12px;font-size:14px">{escape(kind)} rows ({total})</h2>'
                     f"{bar(counts, total, f'bar-{kind}')}{legend(counts, f'{kind}')}")
    progress += "</div>"
    shared = (f" Other jobs of this credential sent too ({other_jobs - 1}); the light line is this job."
              if other_jobs > 1 else "")
    chart = (f'<h2>Requests per second, credential {escape(job.host)}</h2><div class="card">{chart_svg}'
             f'<div class="meta">Dashed: the limiter\'s budget ({limit_per_s:.1f}/s). Red ticks: 429 answers; '
             f"amber: retries scheduled.{shared}</div></div>")
    dead = _dead_section(job, groups, csrf, path)
    links = (f'<h2>Files and links</h2><div class="card"><a id="results-link" href="{path}/results">Download the '
             f"results file ({escape(results_name)})</a>")
    if flower_url:
        links += (f' · <a id="flower-link" href="{escape(flower_url)}/tasks">this job\'s tasks in Flower</a> '
                  f"(search <code>{escape(job.id)}</code>)")
    links += (f"<div class='meta'>From a terminal: <code>tagmango-import status {escape(job.id)}</code>, "
              f"<code>tagmango-import dead {escape(job.id)}</code></div></div>")
    return layout(f"{job.id} · tagmango-import", head + progress + chart + dead + undo + links,
                  refresh_to=None if job.final else path, flower_url=flower_url)


def undo_section(job: JobSummary, *, rows: int, chars: int, csrf: str, undo_of: str | None,
                 undone_by: str | None) -> str:
    """The job's snapshot (old values kept before each change) and its Undo button (POST, CSRF like requeue)."""
    path = f"/jobs/{quote(job.id)}"
    size = f"{chars / 1024:.1f} KB" if chars >= 1024 else f"{chars} characters"
    out = [f'<h2>Snapshot and undo</h2><div class="card" id="undo"><div id="snapshot">Snapshot: <b class="num" '
           f'id="snapshot-rows">{rows}</b> row(s) kept the values they overwrote or deleted ({size}); kept with '
           "the job, in the results file's <code>before</code> column.</div>"]
    link = lambda j: f'<a href="/jobs/{quote(j)}">{escape(j)}</a>'  # noqa: E731
    if undo_of:
        out.append(f"<div>This job undoes {link(undo_of)}.</div>")
    if undone_by:
        out.append(f'<div class="meta" id="undone-by">Undone by {link(undone_by)}.</div>')
    if job.final:
        out.append(f'<form method="post" action="{path}/undo" style="margin:6px 0">'
                   f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
                   f'<button type="submit" id="undo-button">Undo this job</button> <span class="meta">puts back '
                   "every value it changed and deletes the lessons it created; refused if a value changed since "
                   f"(same as <code>tagmango-import undo {escape(job.id)}</code>; preview with "
                   "<code>--dry-run</code>)</span></form>")
    else:
        out.append('<div class="meta">Undo is offered once every row is final.</div>')
    out.append("</div>")
    return "".join(out)


def _dead_section(job: JobSummary, groups: list[DeadGroup], csrf: str, path: str) -> str:
    if not groups:
        return '<h2>Dead letters</h2><div class="card" id="no-dead">None.</div>'
    out = [f'<h2>Dead letters ({sum(g.count for g in groups)})</h2><div class="card" id="dead">']
    for g in groups:
        rows = "".join(f"<tr><td>{escape(r.sheet)}</td><td class='num'>{r.row}</td><td>{escape(r.title)}</td>"
                       f"<td>{escape(r.message)}</td></tr>" for r in g.rows)
        more = f"<div class='meta'>and {g.count - len(g.rows)} more (all in the results file)</div>" \
            if g.count > len(g.rows) else ""
        out.append(
            f'<div class="group" data-code="{escape(g.code)}"><h3><code>{escape(g.code)}</code> · '
            f'<span class="num">{g.count}</span> row(s)</h3>'
            f'<div><b>Meaning:</b> {_ticks(g.advice.meaning)}</div><div><b>Fix:</b> {_ticks(g.advice.fix)}</div>'
            f'<form method="post" action="{path}/requeue" style="margin:6px 0">'
            f'<input type="hidden" name="code" value="{escape(g.code)}">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f'<button type="submit" id="requeue-{escape(g.code)}">Requeue these {g.count} row(s)</button> '
            f'<span class="meta">once the cause is fixed (same as <code>tagmango-import requeue {escape(job.id)} '
            f'--error-code {escape(g.code)}</code>)</span></form>'
            f'<table class="rows"><tr><th>sheet</th><th>row</th><th>title</th><th>message</th></tr>{rows}</table>'
            f"{more}</div>")
    out.append("</div>")
    return "".join(out)


def _ticks(text: str) -> str:
    """The troubleshooting table's `code` spans as <code>."""
    parts = escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def not_found(job_id: str, flower_url: str | None) -> str:
    return layout("Not found", f'<h1>No such job</h1><div class="card">{escape(job_id)} is not in Redis '
                  '(jobs are kept for TAGMANGO_DEAD_LETTER_DAYS).</div>', flower_url=flower_url)
