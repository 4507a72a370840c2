"""The charts of a face in a report (plotly figures; plotly is imported where they are made):
its probabilities over time, its valence, its time in each expression, the study's events as
bands on each timeline."""

from __future__ import annotations

import html

import numpy as np

from ..labels import colour_of
from .summary import ClipSummary

#: Points per plotted series at most: a 10-minute clip at 30 frames/s has 18,000 frames.
MAX_POINTS = 600


def every(n: int) -> int:
    return max(1, -(-n // MAX_POINTS))


def event_bands(fig, events) -> None:
    """Mark each event on a timeline: a shaded band with its name at the top (set in one
    layout update: adding them one by one took time growing with the square of their
    number)."""
    shapes = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": e.start,
            "x1": e.end,
            "y0": 0,
            "y1": 1,
            "fillcolor": "#888" if i % 2 else "#bbb",
            "opacity": 0.15,
            "line": {"width": 0},
            "layer": "below",
        }
        for i, e in enumerate(events)
    ]
    notes = [
        {
            "x": e.start,
            "xref": "x",
            "y": 1,
            "yref": "paper",
            "text": html.escape(e.event),
            "showarrow": False,
            "xanchor": "left",
            "yanchor": "top",
            "font": {"size": 11},
        }
        for e in events
    ]
    if events:
        fig.update_layout(shapes=shapes, annotations=notes)


def timeline_chart(clip: ClipSummary, track, series: tuple[np.ndarray, np.ndarray]):
    import plotly.graph_objects as go

    times, probs = series
    step = every(len(times))
    t, pts = times[::step].tolist(), probs[::step]
    fig = go.Figure()
    for i, label in enumerate(clip.labels):
        fig.add_trace(
            go.Scatter(
                x=t,
                y=pts[:, i].tolist() if len(pts) else [],
                name=html.escape(label),
                stackgroup="p",
                mode="lines",
                line={"width": 0.5, "color": colour_of(label, clip.labels)},
                hovertemplate=f"{html.escape(label)} %{{y:.2f}} at %{{x:.1f}} s<extra></extra>",
            )
        )
    event_bands(fig, track.events)
    fig.update_layout(
        title="Expression probabilities over time",
        height=260,
        margin={"l": 40, "r": 10, "t": 30, "b": 30},
        xaxis_title="seconds",
        yaxis={"range": [0, 1]},
        legend={"traceorder": "reversed"},
    )
    return fig


def valence_chart(track):
    import plotly.graph_objects as go

    step = every(len(track.valence))
    pts = [(t, v) for t, v in track.valence[::step] if t is not None]
    hover = "valence %{y:.2f} at %{x:.1f} s<extra></extra>"
    fig = go.Figure(
        go.Scatter(
            x=[p[0] for p in pts],
            y=[p[1] for p in pts],
            mode="lines",
            line={"color": "#333"},
            fill="tozeroy",
            hovertemplate=hover,
        )
    )
    event_bands(fig, track.events)
    fig.update_layout(
        title="Valence (happy minus the strongest negative)",
        height=200,
        margin={"l": 40, "r": 10, "t": 30, "b": 30},
        xaxis_title="seconds",
        yaxis={"range": [-1, 1]},
    )
    return fig


def shares_chart(clip: ClipSummary, track):
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Bar(
            x=[html.escape(k) for k in clip.labels],
            y=[track.share[k] for k in clip.labels],
            marker_color=[colour_of(k, clip.labels) for k in clip.labels],
            hovertemplate="%{x}: %{y:.0%} of the time<extra></extra>",
        )
    )
    fig.update_layout(
        title="Time in each expression",
        height=200,
        yaxis_tickformat=".0%",
        margin={"l": 40, "r": 10, "t": 30, "b": 30},
    )
    return fig


def units_chart(track, times: np.ndarray, names, units: np.ndarray):
    """The face's action units over time: one row per unit, darker where stronger (0.5:
    present, as :mod:`mobilefer.action_units` scales them)."""
    import plotly.graph_objects as go

    step = every(len(times))
    z = units[::step].T
    fig = go.Figure(
        go.Heatmap(
            x=times[::step].tolist(),
            y=list(names),
            z=np.where(np.isnan(z), None, np.round(z, 3)).tolist(),
            zmin=0,
            zmax=1,
            colorscale=[[0, "#f7f7f7"], [0.5, "#fdae61"], [1, "#b2182b"]],
            colorbar={"title": {"text": "intensity"}, "tickvals": [0, 0.5, 1]},
            hovertemplate="%{y} %{z:.2f} at %{x:.1f} s<extra></extra>",
        )
    )
    event_bands(fig, track.events)
    fig.update_layout(
        title="Action units over time (0.5 and above: present; MediaPipe's estimates)",
        height=120 + 14 * len(names),
        margin={"l": 50, "r": 10, "t": 30, "b": 30},
        xaxis_title="seconds",
        yaxis={"autorange": "reversed"},
    )
    return fig
