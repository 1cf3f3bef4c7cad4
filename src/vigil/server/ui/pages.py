"""The triage pages, rendered on the server: alerts, one alert, rules, one rule, exceptions, health.

Each function returns the page's body as :class:`~vigil.server.ui.html.Safe` markup;
every value in it went through :func:`~vigil.server.ui.html.esc`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from vigil.eql.fields import lookup
from vigil.server.ui.html import Safe, esc, hidden, join, options, seg, t, url
from vigil.server.ui.markdown import render as markdown
from vigil.server.ui.queries import SEVERITIES, Result, Row
from vigil.sinks.table import alert_summary
from vigil.sinks.terminal import json_line

STATUSES = ("open", "acknowledged", "closed")
RANGES = (
    ("", "any time"),
    ("1h", "last hour"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
)
_TACTIC = re.compile(r"TA\d{4}")
_TECHNIQUE = re.compile(r"T\d{4}(?:\.\d{3})?")


def when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def form_csrf(csrf: str) -> Safe:
    return hidden("csrf", csrf)


def severity_badge(severity: Any) -> Safe:
    s = str(severity or "").lower()
    cls = s if s in SEVERITIES else "unknown"
    return t('<span class="sev sev-{c}">{s}</span>', c=cls, s=severity or "")


# --- alerts -------------------------------------------------------------------------
def alerts_page(res: Result, q: dict, ctx: Any, *, page: int, size: int, kql_error: str | None) -> Safe:
    base = {k: v for k, v in q.items() if k not in ("page",)}
    parts = [
        t("<h1>Alerts</h1>"),
        _alert_filters(q, ctx, kql_error),
        _alert_summary(res, q),
    ]
    if q.get("group") in ("rule", "host"):
        parts.append(_groups(res, q))
    parts.append(_alert_table(res, q, ctx, base))
    parts.append(_pager(res.total, page, size, base))
    return join(parts)


def _alert_filters(q: dict, ctx: Any, kql_error: str | None) -> Safe:
    rules = [("", "any rule")] + [(rid, name or rid) for rid, name in ctx.queries.rules()]
    hosts = [("", "any host")] + [(h, h) for h in ctx.queries.hosts()]
    err = (
        t('<pre class="error" id="kql-error">{e}</pre>', e=esc(kql_error, lines=True))
        if kql_error
        else Safe("")
    )
    return t(
        '<form class="filters" method="get" action="/ui/alerts" id="filters">'
        '<label>Search (KQL) <input type="search" name="q" id="kql" value="{kql}" size="50" '
        'placeholder="process.name: cp and not user.name: root"></label>'
        '<label>Time <select name="range">{ranges}</select></label>'
        '<label>From <input type="text" name="since" value="{since}" placeholder="2026-01-31T00:00:00Z" size="20"></label>'
        '<label>To <input type="text" name="until" value="{until}" size="20"></label>'
        '<label>Severity <select name="severity" id="f-severity">{sev}</select></label>'
        '<label>Rule <select name="rule" id="f-rule">{rules}</select></label>'
        '<label>Host <select name="host" id="f-host">{hosts}</select></label>'
        '<label>Status <select name="status" id="f-status">{status}</select></label>'
        '<label>Group by <select name="group" id="f-group">{group}</select></label>'
        "{sort}{dir}"
        '<button type="submit" id="apply">Apply</button> <a href="/ui/alerts">Reset</a></form>{err}',
        kql=q.get("q", ""),
        ranges=options(q.get("range"), list(RANGES)),
        since=q.get("since", ""),
        until=q.get("until", ""),
        sev=options(q.get("severity"), [("", "any")] + [(s, s) for s in SEVERITIES]),
        rules=options(q.get("rule"), rules),
        hosts=options(q.get("host"), hosts),
        status=options(q.get("status", "open"), [("", "any")] + [(s, s) for s in STATUSES]),
        group=options(q.get("group"), [("", "none"), ("rule", "rule"), ("host", "host")]),
        sort=hidden("sort", q.get("sort", "time")),
        dir=hidden("dir", q.get("dir", "desc")),
        err=err,
    )


def _alert_summary(res: Result, q: dict) -> Safe:
    sev = join(
        t(
            '<li><a href="{u}">{b}</a> <span class="count" id="count-{s}">{n}</span></li>',
            u=url("/ui/alerts", **dict(q, severity=s, page="")),
            b=severity_badge(s),
            s=s,
            n=res.by_severity.get(s, 0),
        )
        for s in SEVERITIES
    )
    rules = join(
        t(
            '<li><a href="{u}">{name}</a> <span class="count">{n}</span></li>',
            u=url("/ui/alerts", **dict(q, rule=name, page="")),
            name=name or "(no rule)",
            n=n,
        )
        for name, n in res.by_rule
    )
    return t(
        '<section class="summary"><div><h2>Alerts <span id="total">{total}</span></h2>{partial}{hist}</div>'
        '<div><h3>By severity</h3><ul class="counts">{sev}</ul></div>'
        '<div><h3>By rule</h3><ul class="counts" id="by-rule">{rules}</ul></div></section>',
        total=res.total,
        partial=t(
            '<p class="error" id="partial">The search read the newest {n} alerts of these filters and '
            "stopped: narrow the time range to search the older ones.</p>",
            n=f"{res.searched:,}",
        )
        if res.searched
        else Safe(""),
        hist=histogram(res.histogram, res.bucket_ms),
        sev=sev,
        rules=rules,
    )


def histogram(buckets: list[tuple[int, int]], bucket_ms: int, width: int = 480, height: int = 80) -> Safe:
    """Alerts over time as an SVG bar chart (attributes, no inline style: the CSP allows none)."""
    if not buckets:
        return t('<p class="muted">No alerts in this range.</p>')
    top = max(n for _, n in buckets) or 1
    bar = min(width / len(buckets), 24.0)
    rects = []
    for i, (start, n) in enumerate(buckets):
        h = 0 if n == 0 else max(1.0, (height - 2) * n / top)
        rects.append(
            t(
                '<rect x="{x}" y="{y}" width="{w}" height="{h}"><title>{label}: {n}</title></rect>',
                x=f"{i * bar:.1f}",
                y=f"{height - h:.1f}",
                w=f"{max(bar - 1, 1):.1f}",
                h=f"{h:.1f}",
                label=when(start),
                n=n,
            )
        )
    return t(
        '<figure class="histogram"><svg id="histogram" role="img" aria-label="alerts over time" '
        'width="{w}" height="{h}" viewBox="0 0 {w} {h}">{rects}</svg>'
        "<figcaption>{a} to {b}, {step} per bar, at most {top} in one</figcaption></figure>",
        w=width,
        h=height,
        rects=join(rects),
        a=when(buckets[0][0]),
        b=when(buckets[-1][0] + bucket_ms),
        step=_duration(bucket_ms),
        top=top,
    )


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"


def _groups(res: Result, q: dict) -> Safe:
    what = q.get("group")
    rows = join(
        t(
            '<tr><td><a href="{u}">{key}</a></td><td>{n}</td><td>{sev}</td><td>{last}</td></tr>',
            u=url("/ui/alerts", **dict(q, group="", page="", **{what: g["key"]})),
            key=g["key"] or "(none)",
            n=g["count"],
            sev=SEVERITIES[::-1][g["high"] - 1] if g["high"] else "",
            last=when(g["last_ms"]),
        )
        for g in res.groups
    )
    return t(
        '<section><h2>Grouped by {what}</h2><table class="grid" id="groups"><thead><tr><th>{what}</th>'
        "<th>alerts</th><th>highest severity</th><th>latest</th></tr></thead><tbody>{rows}</tbody></table></section>",
        what=what,
        rows=rows,
    )


_COLUMNS = (
    ("time", "time"),
    ("rule", "rule"),
    ("severity", "severity"),
    ("risk", "risk"),
    ("host", "host"),
    ("user", None),
    ("process", None),
    ("file", None),
    ("status", "status"),
)


def _alert_table(res: Result, q: dict, ctx: Any, base: dict) -> Safe:
    sort, direction = q.get("sort", "time"), q.get("dir", "desc")
    heads = []
    for label, key in _COLUMNS:
        if key is None:
            heads.append(t("<th>{l}</th>", l=label))
            continue
        flip = "asc" if (sort == key and direction == "desc") else "desc"
        mark = (" \u25bc" if direction == "desc" else " \u25b2") if sort == key else ""
        heads.append(
            t(
                '<th><a class="sort" href="{u}" data-sort="{k}">{l}{m}</a></th>',
                u=url("/ui/alerts", **dict(base, sort=key, dir=flip)),
                k=key,
                l=label,
                m=mark,
            )
        )
    body = join(_alert_row(r) for r in res.rows) or t('<tr><td colspan="10">No alerts match.</td></tr>')
    return t(
        '<form method="post" action="/ui/alerts/status" id="bulk">{csrf}{next}'
        '<div class="bulk"><label><input type="checkbox" id="select-all"> all on this page</label> '
        'Set status of selected: <select name="status" id="bulk-status">{opts}</select> '
        '<button type="submit" id="bulk-apply">Apply</button></div>'
        '<table class="grid" id="alerts"><thead><tr><th></th>{heads}</tr></thead><tbody>{body}</tbody></table></form>',
        csrf=form_csrf(ctx.csrf),
        next=hidden("next", url("/ui/alerts", **base)),
        opts=options(None, [(s, s) for s in STATUSES]),
        heads=join(heads),
        body=body,
    )


def _alert_row(row: Row) -> Safe:
    s = alert_summary(row.doc or {})
    return t(
        '<tr data-uuid="{uuid}"><td><input type="checkbox" name="id" value="{uuid}" class="pick"></td>'
        '<td><a class="open-alert" href="/ui/alerts/{link}">{time}</a></td>'
        '<td><a href="/ui/rules/{rlink}">{rule}</a></td><td>{sev}</td><td>{risk}</td><td>{host}</td>'
        '<td>{user}</td><td>{proc}</td><td class="path">{file}</td><td class="status">{status}</td></tr>',
        uuid=row.uuid,
        link=seg(row.uuid),
        time=when(row.ts_ms),
        rlink=seg(row.rule_id or ""),
        rule=row.rule_name or row.rule_id or "",
        sev=severity_badge(row.severity),
        risk=_number(row.risk),
        host=row.host or "",
        user=s["user"],
        proc=s["process"],
        file=s["file"],
        status=row.status,
    )


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _pager(total: int, page: int, size: int, base: dict) -> Safe:
    pages = max(1, (total + size - 1) // size)
    prev = (
        t('<a id="prev" href="{u}">previous</a>', u=url("/ui/alerts", **dict(base, page=page - 1)))
        if page > 1
        else Safe("")
    )
    nxt = (
        t('<a id="next" href="{u}">next</a>', u=url("/ui/alerts", **dict(base, page=page + 1)))
        if page < pages
        else Safe("")
    )
    return t('<nav class="pager">{prev} page {p} of {n} {next}</nav>', prev=prev, p=page, n=pages, next=nxt)


# --- one alert --------------------------------------------------------------------------
def flatten(doc: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted field names and their values (arrays of objects flattened into their fields)."""
    out: list[tuple[str, Any]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) or (
                isinstance(value, list) and any(isinstance(v, dict) for v in value)
            ):
                out.extend(flatten(value, name))
            else:
                out.append((name, value))
    elif isinstance(doc, list):
        for value in doc:
            out.extend(flatten(value, prefix))
    return out


def source_fields(alert: dict) -> list[tuple[str, Any]]:
    """The source event's fields of an alert: everything but Kibana's own."""
    return sorted(
        (name, value) for name, value in flatten(alert) if not name.startswith(("kibana.", "signal."))
    )


def show_value(value: Any) -> str:
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return "" if value is None else str(value)


def pretty_json(doc: Any) -> str:
    return json_line(
        orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str)
    ).decode()


def alert_page(
    doc: dict, rule: Any, ctx: Any, *, sequence: list[dict], by_host: list[Row], by_entity: list[Row]
) -> Safe:
    first = lambda path: (lookup(doc, path) or [None])[0]  # noqa: E731
    uuid = first("kibana.alert.uuid")
    rule_id = first("kibana.alert.rule.rule_id") or ""
    status = first("kibana.alert.workflow_status") or "open"
    fields = source_fields(doc)
    status_form = t(
        '<form method="post" action="/ui/alerts/{link}/status" class="inline" id="status-form">{csrf}'
        '<select name="status" id="alert-status" aria-label="status">{opts}</select> <button type="submit" id="set-status">'
        "Set</button></form>",
        link=seg(uuid),
        csrf=form_csrf(ctx.csrf),
        opts=options(status, [(s, s) for s in STATUSES]),
    )
    facts = t(
        '<dl class="facts"><dt>Reason</dt><dd id="reason">{reason}</dd><dt>Rule</dt><dd><a href="/ui/rules/{rl}" '
        'id="rule-link">{rule}</a></dd><dt>Severity</dt><dd>{sev}</dd><dt>Risk score</dt><dd>{risk}</dd>'
        "<dt>Time</dt><dd>{time}</dd><dt>Event time</dt><dd>{otime}</dd><dt>Host</dt><dd>{host}</dd>"
        '<dt>Status</dt><dd><span id="status">{status}</span> {form}</dd><dt>Alert id</dt><dd><code>{uuid}</code></dd></dl>',
        reason=first("kibana.alert.reason"),
        rl=seg(rule_id),
        rule=first("kibana.alert.rule.name") or rule_id,
        sev=severity_badge(first("kibana.alert.severity")),
        risk=first("kibana.alert.risk_score"),
        time=first("@timestamp"),
        otime=first("kibana.alert.original_time"),
        host=first("host.name"),
        status=status,
        form=status_form,
        uuid=uuid,
    )
    field_rows = join(
        t(
            '<tr><td><label><input type="checkbox" name="field" value="{name}" class="exc-field"> '
            '<code>{name}</code></label></td><td class="value">{value}</td></tr>',
            name=name,
            value=show_value(value),
        )
        for name, value in fields
    )
    fields_form = t(
        '<form method="post" action="/ui/alerts/{link}/exception" id="exception-form">{csrf}'
        '<table class="grid fields" id="fields"><thead><tr><th>field</th><th>value</th></tr></thead>'
        "<tbody>{rows}</tbody></table>"
        "<p>Add an exception to <b>{rule}</b> for events whose chosen fields hold these values: "
        '<input type="text" name="comment" placeholder="why (optional)" size="40"> '
        '<button type="submit" id="add-exception">Add rule exception</button></p></form>',
        link=seg(uuid),
        csrf=form_csrf(ctx.csrf),
        rows=field_rows,
        rule=first("kibana.alert.rule.name") or rule_id,
    )
    parts = [
        t("<h1>Alert</h1>"),
        facts,
        attack_links(_threat(doc, rule)),
    ]
    if sequence:
        parts.append(
            t(
                '<section><h2>Sequence events, in order</h2><table class="grid" id="sequence"><thead><tr><th>#</th>'
                "<th>time</th><th>category</th><th>action</th><th>process</th><th>file</th></tr></thead>"
                "<tbody>{rows}</tbody></table></section>",
                rows=join(_sequence_row(i, a) for i, a in enumerate(sequence, 1)),
            )
        )
    parts.append(
        t(
            '<section><h2>Investigation guide</h2><div class="guide" id="guide">{g}</div></section>',
            g=markdown(_note(doc, rule))
            if _note(doc, rule)
            else t('<p class="muted">This rule has no guide.</p>'),
        )
    )
    parts.append(t("<section><h2>Source event</h2>{f}</section>", f=fields_form))
    parts.append(
        t(
            '<section><h2>JSON</h2><pre class="json" id="json">{j}</pre></section>',
            j=pretty_json(doc),
        )
    )
    parts.append(
        t(
            '<section class="related"><div><h2>Same host</h2>{a}</div><div><h2>Same process '
            "(<code>process.entity_id</code>)</h2>{b}</div></section>",
            a=_mini_table(by_host, "related-host"),
            b=_mini_table(by_entity, "related-process"),
        )
    )
    return join(parts)


def _sequence_row(i: int, alert: dict) -> Safe:
    s = alert_summary(alert)
    first = lambda path: (lookup(alert, path) or [None])[0]  # noqa: E731
    return t(
        '<tr><td>{i}</td><td><a href="/ui/alerts/{l}">{time}</a></td><td>{cat}</td><td>{act}</td>'
        '<td>{proc}</td><td class="path">{file}</td></tr>',
        i=i,
        l=seg(first("kibana.alert.uuid")),
        time=first("kibana.alert.original_time") or first("@timestamp"),
        cat=show_value(lookup(alert, "event.category")),
        act=first("event.action"),
        proc=s["process"],
        file=first("file.path"),
    )


def _mini_table(rows: list[Row], ident: str) -> Safe:
    if not rows:
        return t('<p class="muted" id="{i}">None.</p>', i=ident)
    body = join(
        t(
            '<tr><td><a href="/ui/alerts/{l}">{time}</a></td><td>{rule}</td><td>{sev}</td><td>{status}</td></tr>',
            l=seg(r.uuid),
            time=when(r.ts_ms),
            rule=r.rule_name,
            sev=severity_badge(r.severity),
            status=r.status,
        )
        for r in rows
    )
    return t('<table class="grid" id="{i}"><tbody>{b}</tbody></table>', i=ident, b=body)


def _threat(doc: dict | None, rule: Any) -> list:
    if rule is not None and getattr(rule, "threat", None):
        return rule.threat
    if doc is None:
        return []
    return lookup(doc, "kibana.alert.rule.threat") or lookup(doc, "kibana.alert.rule.parameters.threat") or []


def _note(doc: dict | None, rule: Any) -> str:
    if rule is not None and getattr(rule, "note", None):
        return str(rule.note)
    if doc is None:
        return ""
    values = lookup(doc, "kibana.alert.rule.note") or lookup(doc, "kibana.alert.rule.parameters.note")
    return str(values[0]) if values else ""


def attack_links(threat: list) -> Safe:
    """ATT&CK tactics and techniques, each linked to attack.mitre.org by its id (a rule's own
    ``reference`` URLs are not used: an id that is not ATT&CK's shape is shown as text)."""
    items = []
    for entry in threat if isinstance(threat, list) else []:
        if not isinstance(entry, dict):
            continue
        tactic = entry.get("tactic") if isinstance(entry.get("tactic"), dict) else {}
        techniques = []
        for tech in entry.get("technique") or []:
            if not isinstance(tech, dict):
                continue
            subs = [
                _attack_link(s.get("id"), s.get("name"), "techniques")
                for s in tech.get("subtechnique") or []
                if isinstance(s, dict)
            ]
            sub_list = t("<ul>{s}</ul>", s=join(t("<li>{x}</li>", x=x) for x in subs)) if subs else Safe("")
            techniques.append(
                t(
                    "<li>{x}{subs}</li>",
                    x=_attack_link(tech.get("id"), tech.get("name"), "techniques"),
                    subs=sub_list,
                )
            )
        items.append(
            t(
                "<li>{x}<ul>{techs}</ul></li>",
                x=_attack_link(tactic.get("id"), tactic.get("name"), "tactics"),
                techs=join(techniques),
            )
        )
    if not items:
        return Safe("")
    return t(
        '<section><h2>MITRE ATT&amp;CK</h2><ul class="attack" id="attack">{i}</ul></section>', i=join(items)
    )


def _attack_link(ident: Any, name: Any, kind: str) -> Safe:
    text = f"{ident or ''} {name or ''}".strip()
    ident = str(ident or "")
    pattern = _TACTIC if kind == "tactics" else _TECHNIQUE
    if not pattern.fullmatch(ident):
        return esc(text)
    path = ident.replace(".", "/")
    return t(
        '<a href="https://attack.mitre.org/{k}/{p}/" rel="noopener noreferrer">{text}</a>',
        k=kind,
        p=path,
        text=text,
    )


# --- rules --------------------------------------------------------------------------------
def rules_page(rows: list[dict], q: dict, ctx: Any, *, page: int, size: int, total: int) -> Safe:
    body = join(_rule_row(r, ctx) for r in rows)
    filters = t(
        '<form class="filters" method="get" action="/ui/rules"><label>Name <input type="search" name="q" '
        'value="{q}"></label><label>Runnable <select name="runnable">{run}</select></label>'
        '<button type="submit">Apply</button></form>',
        q=q.get("q", ""),
        run=options(q.get("runnable"), [("", "any"), ("yes", "runs"), ("no", "does not run")]),
    )
    pages = max(1, (total + size - 1) // size)
    nav = []
    if page > 1:
        nav.append(t('<a href="{u}">previous</a>', u=url("/ui/rules", **dict(q, page=page - 1))))
    nav.append(t(" page {p} of {n} ({total} rules) ", p=page, n=pages, total=total))
    if page < pages:
        nav.append(t('<a href="{u}">next</a>', u=url("/ui/rules", **dict(q, page=page + 1))))
    return t(
        "<h1>Rules</h1>{filters}"
        '<table class="grid" id="rules"><thead><tr><th>rule</th><th>type</th><th>severity</th><th>risk</th>'
        "<th>enabled</th><th>last run</th><th>alerts</th><th>runs?</th></tr></thead><tbody>{body}</tbody></table>"
        '<nav class="pager">{nav}</nav>',
        filters=filters,
        body=body,
        nav=join(nav),
    )


def last_run_text(run: dict | None) -> str:
    if not run:
        return "never"
    text = f"{when(run['started_ms'])}, {run['duration_ms']} ms, {run['alerts_written']} alerts"
    if run.get("capped"):
        text += ", capped"
    if run.get("gap_from_ms") is not None:
        text += f", gap of {_duration(int(run['gap_to_ms'] - run['gap_from_ms']))}"
    if run.get("error"):
        text += f", error: {run['error']}"
    return text


def enable_form(r: dict, ctx: Any) -> Safe:
    action = "disable" if r["enabled"] else "enable"
    return t(
        '<form method="post" action="/ui/rules/{l}/{a}" class="inline">{csrf}{next}'
        '<button type="submit" class="toggle {cls}" data-rule="{rid}">{label}</button></form>',
        l=seg(r["rule_id"]),
        a=action,
        csrf=form_csrf(ctx.csrf),
        next=hidden("next", ctx.path),
        cls="on" if r["enabled"] else "off",
        rid=r["rule_id"],
        label="on" if r["enabled"] else "off",
    )


def _rule_row(r: dict, ctx: Any) -> Safe:
    return t(
        '<tr><td><a href="/ui/rules/{l}">{name}</a></td><td>{type}</td><td>{sev}</td><td>{risk}</td>'
        "<td>{toggle}</td><td>{last}</td><td>{alerts}</td><td>{why}</td></tr>",
        l=seg(r["rule_id"]),
        name=r["name"],
        type=r["type"],
        sev=severity_badge(r["severity"]),
        risk=r["risk_score"],
        toggle=enable_form(r, ctx),
        last=last_run_text(r.get("last_run")),
        alerts=t(
            '<a href="{u}">{n}</a>', u=url("/ui/alerts", rule=r["rule_id"], status=""), n=r.get("alerts", 0)
        ),
        why="yes" if r["runnable"] else (r.get("why_not") or "no"),
    )


def rule_page(rule: Any, r: dict, runs: list[dict], items: list[dict], ctx: Any) -> Safe:
    facts = t(
        '<dl class="facts"><dt>Rule id</dt><dd><code>{rid}</code></dd><dt>Type</dt><dd>{type} ({lang})</dd>'
        "<dt>Severity</dt><dd>{sev}</dd><dt>Risk score</dt><dd>{risk}</dd><dt>Enabled</dt><dd>{toggle}</dd>"
        "<dt>Runs</dt><dd>{why}</dd><dt>Schedule</dt><dd>every {interval}, looking back to {frm}, at most "
        "{max} alerts a run</dd><dt>Indices</dt><dd>{index}</dd><dt>Version</dt><dd>{version}</dd>"
        "<dt>Source</dt><dd>{source}</dd><dt>Description</dt><dd>{desc}</dd></dl>",
        rid=r["rule_id"],
        type=r["type"],
        lang=getattr(rule, "language", None) or "",
        sev=severity_badge(r["severity"]),
        risk=r["risk_score"],
        toggle=enable_form(r, ctx),
        why="yes" if r["runnable"] else (r.get("why_not") or "no"),
        interval=r["interval"],
        frm=r["from"],
        max=r["max_signals"],
        index=", ".join(getattr(rule, "index", None) or []),
        version=r["version"],
        source=_source_name(r.get("source")),
        desc=getattr(rule, "description", ""),
    )
    run_rows = join(
        t(
            "<tr><td>{start}</td><td>{dur} ms</td><td>{a} to {b}</td><td>{searched}</td><td>{alerts}</td>"
            "<td>{capped}</td><td>{gap}</td><td>{err}</td></tr>",
            start=when(run["started_ms"]),
            dur=run["duration_ms"],
            a=when(run["window_from_ms"]),
            b=when(run["window_to_ms"]),
            searched=run["events_searched"],
            alerts=run["alerts_written"],
            capped="capped" if run["capped"] else "",
            gap=_duration(run["gap_ms"]) if run.get("gap_ms") else "",
            err=run.get("error") or "",
        )
        for run in runs
    )
    note = _note(None, rule)
    return join(
        [
            t("<h1>{n}</h1>", n=r["name"]),
            facts,
            t(
                '<p><a href="{u}">Alerts of this rule</a></p>',
                u=url("/ui/alerts", rule=r["rule_id"], status=""),
            ),
            t(
                '<section><h2>Query</h2><pre class="query" id="query">{q}</pre></section>',
                q=getattr(rule, "query", ""),
            ),
            attack_links(_threat(None, rule)),
            t(
                '<section><h2>Investigation guide</h2><div class="guide" id="guide">{g}</div></section>',
                g=markdown(note) if note else t('<p class="muted">This rule has no guide.</p>'),
            ),
            t("<section><h2>Exceptions added here</h2>{x}</section>", x=exception_table(items, ctx)),
            t(
                '<section><h2>Run history</h2><table class="grid" id="runs"><thead><tr><th>started</th>'
                "<th>took</th><th>window</th><th>events</th><th>alerts</th><th>capped</th><th>gap</th>"
                "<th>error</th></tr></thead><tbody>{rows}</tbody></table></section>",
                rows=run_rows or t('<tr><td colspan="8">No runs yet.</td></tr>'),
            ),
        ]
    )


def _source_name(source: Any) -> str:
    """Only the file's name: the server's folders are nobody's business on a page."""
    if not source:
        return ""
    return str(source).replace("\\", "/").rsplit("/", 1)[-1]


# --- exceptions ---------------------------------------------------------------------------
def exception_table(items: list[dict], ctx: Any) -> Safe:
    if not items:
        return t('<p class="muted" id="no-exceptions">No exceptions.</p>')
    rows = join(
        t(
            '<tr data-item="{id}"><td><a href="/ui/rules/{rl}">{rule}</a></td><td>{entries}</td><td>{comment}</td>'
            "<td>{created}</td><td>"
            '<form method="post" action="/ui/exceptions/{il}/delete" class="inline">{csrf}{next}'
            '<button type="submit" class="remove-exception">Remove</button></form></td></tr>',
            id=item["item_id"],
            rl=seg(item.get("_rule_id", "")),
            rule=ctx.rule_name(item.get("_rule_id", "")),
            entries=join(
                t(
                    "<div><code>{f}</code> {op} <code>{v}</code></div>",
                    f=e.get("field"),
                    op="is one of" if e.get("type") == "match_any" else "is",
                    v=show_value(e.get("value")),
                )
                for e in item.get("entries", [])
            ),
            comment=" ".join(c.get("comment", "") for c in item.get("comments", []) if isinstance(c, dict)),
            created=item.get("created_at"),
            il=seg(item["item_id"]),
            csrf=form_csrf(ctx.csrf),
            next=hidden("next", ctx.path),
        )
        for item in items
    )
    return t(
        '<table class="grid" id="exceptions"><thead><tr><th>rule</th><th>when</th><th>comment</th><th>added</th>'
        "<th></th></tr></thead><tbody>{rows}</tbody></table>",
        rows=rows,
    )


def exceptions_page(items: list[dict], ctx: Any) -> Safe:
    return t(
        "<h1>Rule exceptions</h1><p>Added from alerts; each applies to its rule's next runs. "
        '<a href="/ui/exceptions.ndjson" id="export" download="vigil-exceptions.ndjson">Export</a> '
        "in Kibana's exception-list format (import it in Kibana, or give it to <code>vigil scan --exceptions</code>).</p>"
        "{table}",
        table=exception_table(items, ctx),
    )


# --- health -------------------------------------------------------------------------------
def health_page(facts: list[tuple[str, list[tuple[str, Any]]]], behind: list[tuple[str, str, str]]) -> Safe:
    sections = []
    for title, rows in facts:
        body = join(t("<tr><th>{k}</th><td>{v}</td></tr>", k=k, v=v) for k, v in rows)
        sections.append(
            t('<section><h2>{h}</h2><table class="grid kv">{b}</table></section>', h=title, b=body)
        )
    late = join(
        t(
            '<tr><td><a href="/ui/rules/{l}">{name}</a></td><td>{last}</td></tr>',
            l=seg(rid),
            name=name,
            last=last,
        )
        for rid, name, last in behind
    )
    sections.append(
        t(
            "<section><h2>Runs behind schedule</h2>{x}</section>",
            x=(
                t(
                    '<table class="grid" id="behind"><thead><tr><th>rule</th><th>last run</th></tr></thead>'
                    "<tbody>{r}</tbody></table>",
                    r=late,
                )
                if behind
                else t('<p id="behind-none">None: every enabled rule ran within its interval.</p>')
            ),
        )
    )
    return join([t("<h1>Health</h1>"), *sections])
