"""The study's part of ``mobilefer report``: a table of each event for one face, and the study
section (every participant compared, per event and group, with charts). Plotly is imported by
the functions that draw."""

from __future__ import annotations

import html

from ..labels import colour_of


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v:.0%}"


def _signed(v: float | None) -> str:
    return "" if v is None else f"{v:+.2f}"


def clock(t: float | None) -> str:
    """A time in seconds as ``m:ss.s`` (empty for ``None``)."""
    return "" if t is None else f"{int(t // 60)}:{t % 60:04.1f}"


def _strongest(e) -> str:
    """The event's strongest expression other than neutral: its peak probability and time."""
    if not e.peaks:
        return ""
    label, m = max(
        ((k, m) for k, m in e.peaks.items() if k != "neutral"),
        key=lambda km: km[1].probability,
        default=(None, None),
    )
    if m is None:
        return ""
    return f"{label} {m.probability:.0%} at {clock(m.time)}"


def event_table(events, labels, caption: str) -> str:
    """An HTML table of one face's :class:`mobilefer.study.EventSummary` per event: usable
    frames, mean valence, its change from the baseline, the most frequent expression, the
    strongest moment of an expression other than neutral, and each label's mean probability."""
    if not events:
        return ""
    change = any(e.change for e in events)
    head = [
        "event",
        "seconds",
        "usable frames",
        "valence",
        *(["vs baseline"] if change else []),
        "mostly",
        "strongest moment",
        *labels,
    ]
    rows = []
    for e in events:
        mostly = max(e.share, key=e.share.get) if e.share else "no face"
        seen = f"{e.usable}/{e.frames} ({_pct(e.usable_share)})" if e.frames else "not in the clip"
        cells = [
            e.event,
            f"{e.start:g}-{e.end:g}",
            seen + (f", {e.turned} turned away" if e.turned else ""),
            _signed(e.valence),
            *([_signed(e.change["valence"]) if e.change else ""] if change else []),
            mostly,
            _strongest(e),
            *(_pct(e.mean[k]) if e.mean else "" for k in labels),
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return events_html(caption, head, rows)


def events_html(caption: str, head, rows) -> str:
    """A table of class ``events``: its caption, a header cell per name of ``head`` (text) and
    ``rows``, each already ``<tr>...</tr>`` markup."""
    return (
        f"<table class=events><caption>{html.escape(caption)}</caption><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def _unit_cell(value: float | None) -> str:
    """A unit's mean as a cell, marked ``on`` from 0.5 (present); empty without one."""
    if value is None:
        return "<td></td>"
    return f"<td{' class=on' if value >= 0.5 else ''}>{value:.2f}</td>"


def unit_table(events, caption: str) -> str:
    """An HTML table of each event's mean action units (the face mesh's, 0-1; 0.5 and above
    marked present); empty where no event has them."""
    got = [e for e in events if e.action_units]
    if not got:
        return ""
    names = tuple(got[0].action_units)
    rows = []
    for e in events:
        au = e.action_units or {}
        cells = "".join(_unit_cell(au.get(u)) for u in names)
        rows.append(f"<tr><td>{html.escape(e.event)}</td>{cells}</tr>")
    return events_html(caption, ("event", *names), rows)


def _ci(iv, sign: str = "+") -> str:
    if iv is None:
        return ""
    if iv.low is None:
        return f"{iv.mean:{sign}.2f}"
    return f"{iv.mean:{sign}.2f} [{iv.low:{sign}.2f}, {iv.high:{sign}.2f}]"


def _figures(study):
    """Valence per event with its 95% interval, and each expression's mean per event, one
    series per group (or everyone)."""
    import plotly.graph_objects as go

    groups = study.groups or (None,)
    val = go.Figure()
    for g in groups:
        rows = [r for r in study.table if r.group == g]
        val.add_trace(
            go.Bar(
                x=[r.event for r in rows],
                y=[r.valence.mean for r in rows],
                name=g or "everyone",
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [
                        (r.valence.high - r.valence.mean) if r.valence.high is not None else 0
                        for r in rows
                    ],
                    "arrayminus": [
                        (r.valence.mean - r.valence.low) if r.valence.low is not None else 0
                        for r in rows
                    ],
                },
                hovertemplate="%{x}: valence %{y:+.2f}<extra>"
                + html.escape(g or "everyone")
                + "</extra>",
            )
        )
    val.update_layout(
        title="Mean valence per event, with its 95% interval across participants",
        barmode="group",
        height=300,
        yaxis={"range": [-1, 1]},
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
    )
    out = [val]
    for g in groups:
        rows = [r for r in study.table if r.group == g]
        fig = go.Figure()
        for k in study.labels:
            name = html.escape(k)
            fig.add_trace(
                go.Bar(
                    x=[html.escape(r.event) for r in rows],
                    y=[r.mean[k].mean for r in rows],
                    name=name,
                    marker_color=colour_of(k, study.labels),
                    hovertemplate=f"{name} %{{y:.0%}}<extra></extra>",
                )
            )
        who = f" ({html.escape(g)})" if g else ""
        fig.update_layout(
            title=f"Mean of each expression per event{who}",
            barmode="stack",
            height=300,
            yaxis={"tickformat": ".0%", "range": [0, 1]},
            margin={"l": 40, "r": 10, "t": 40, "b": 30},
        )
        out.append(fig)
    units = [r for r in study.table if r.group is None and r.action_units]
    if units:
        names = tuple(units[0].action_units)
        heat = go.Figure(
            go.Heatmap(
                x=list(names),
                y=[html.escape(r.event) for r in units],
                z=[[round(r.action_units[u].mean, 3) for u in names] for r in units],
                zmin=0,
                zmax=1,
                colorscale=[[0, "#f7f7f7"], [0.5, "#fdae61"], [1, "#b2182b"]],
                hovertemplate="%{y}: %{x} %{z:.2f}<extra></extra>",
            )
        )
        heat.update_layout(
            title="Mean action units per event across participants (0.5: present)",
            height=140 + 30 * len(units),
            margin={"l": 80, "r": 10, "t": 40, "b": 30},
        )
        out.append(heat)
    return out


def study_section(study) -> str:
    """The HTML of the study: participants, the table per event (and group) with 95% intervals
    across participants, and charts comparing events and groups."""
    import plotly.io as pio

    groups = ", ".join(study.groups)
    people = len(study.participants)
    intro = (
        f"<h2>Study: {people} participant(s), {len(study.events)} event(s)"
        + (f", groups {html.escape(groups)}" if groups else "")
        + "</h2>"
        "<p class=note>Per event: each participant's mean over the frames in which their "
        "face was found and scored (usable), then the mean across participants and its 95% "
        "interval (Student's t). The CSV (--csv) holds one row per participant and event."
        "</p>"
    )
    head = [
        "event",
        "group",
        "participants",
        "usable",
        "valence [95% interval]",
        *(["vs baseline"] if study.baseline else []),
        *study.labels,
    ]
    rows = []
    for r in study.table:
        cells = [
            r.event,
            r.group or "everyone",
            r.participants,
            _pct(r.usable_share),
            _ci(r.valence),
            *([_ci(r.change_valence)] if study.baseline else []),
            *(f"{r.mean[k].mean:.0%}" for k in study.labels),
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    table = (
        "<table id=study><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )
    per = [
        "<table id=participants><tr><th>participant</th><th>group</th><th>clip</th>"
        + "".join(f"<th>{html.escape(e)}: usable</th>" for e in study.events)
        + "</tr>"
    ]
    for p in study.participants:
        by = {e.event: e for e in p.events}
        per.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (
                    p.name,
                    p.group or "",
                    p.clip,
                    *(_pct(by[e].usable_share) if e in by else "" for e in study.events),
                )
            )
            + "</tr>"
        )
    config = {"displaylogo": False}
    plots = "".join(
        pio.to_html(f, full_html=False, include_plotlyjs=False, config=config)
        for f in _figures(study)
    )
    names = study.unit_names
    units = ""
    if names:
        au_rows = [
            f"<tr><td>{html.escape(r.event)}</td><td>{html.escape(r.group or 'everyone')}</td>"
            + "".join(f"<td>{html.escape(_ci(r.action_units[u], '-'))}</td>" for u in names)
            + "</tr>"
            for r in study.table
            if r.action_units
        ]
        units = (
            "<table id=study-units><caption>Action units per event: the mean across "
            "participants [95% interval] (the face mesh's estimates, 0-1; 0.5: present)"
            "</caption><tr><th>event</th><th>group</th>"
            + "".join(f"<th>{html.escape(u)}</th>" for u in names)
            + "</tr>"
            + "".join(au_rows)
            + "</table>"
        )
    return intro + table + units + plots + "".join(per) + "</table>"
