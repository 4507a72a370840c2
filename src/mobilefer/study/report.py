"""``mobilefer report``: one self-contained HTML page (needs the ``[report]`` extra, plotly) that
a person can read without the docs: a table comparing every clip and face, then for each
tracked face a thumbnail from its sharpest frame, its expression probabilities over time, its
valence, the time spent in each expression and its peak moments as thumbnails.

:class:`Collector` watches the results of :meth:`mobilefer.Recognizer.stream` go by and keeps
what the page shows that records do not hold (small face thumbnails); :func:`write_report`
turns the summaries (:func:`mobilefer.summary.summarize`) into the page, with plotly's script
embedded once so that it works offline. Series are downsampled for plotting to
:data:`MAX_POINTS` per track; the summaries are computed on every frame.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..preprocess import crop
from ..records import cell
from ..sinks import write_together
from .charts import shares_chart, timeline_chart, units_chart, valence_chart
from .plan import StudyPlan
from .summarizer import Summarizer
from .summary import ClipSummary
from .tables import compare
from .view import clock, event_table, study_section, unit_table

#: Tracks whose faces a report keeps as thumbnails (each about 200 KB while collected).
MAX_THUMBNAIL_TRACKS = 200
#: Tracks of one clip drawn with charts (the longest); the others are rows of the table only.
MAX_DRAWN_TRACKS = 60
#: Side of the face thumbnails, pixels; their JPEG quality.
THUMB_SIDE, THUMB_QUALITY = 96, 80


def _face(image: np.ndarray, box) -> np.ndarray:
    """The face at ``box`` with a little room, as a THUMB_SIDE-pixel square (BGR)."""
    return cv2.resize(
        crop(image, box, 0.15), (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA
    )


def _sharpness(face: np.ndarray) -> float:
    """The variance of the Laplacian of a thumbnail: higher is sharper."""
    return float(cv2.Laplacian(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var())


def _jpeg(face: np.ndarray | None) -> str:
    if face is None:
        return ""
    ok, jpg = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    return "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode()


class Collector:
    """Watches results go by for a report: the summaries' compact arrays
    (:class:`mobilefer.summary.Summarizer`, never the results), and per (source, track) the
    sharpest face seen and the face at each label's highest probability so far, as small
    thumbnails, for the first :data:`MAX_THUMBNAIL_TRACKS` tracks (a live session may see
    thousands)."""

    def __init__(self) -> None:
        self.summarizer = Summarizer()
        self.sharpest: dict[tuple[str, int], tuple[float, np.ndarray]] = {}
        self.peaks: dict[tuple[str, int, str], tuple[float, np.ndarray]] = {}

    @property
    def count(self) -> int:
        """Results' records taken so far (0: nothing was read)."""
        return self.summarizer.count

    @property
    def sources(self) -> dict[str, bool]:
        """Every source read, and whether it is a video (or webcam)."""
        return self.summarizer.sources

    def add(self, result) -> None:
        """Take one :class:`mobilefer.stream.Result` (its image is not kept, only thumbnails)."""
        self.summarizer.add(result)
        if result.error or result.image is None or result.frame is None:
            return
        for f in result.faces:
            key = (result.source, -1 if f.track_id is None else f.track_id)
            if key not in self.sharpest and len(self.sharpest) >= MAX_THUMBNAIL_TRACKS:
                continue
            face = _face(result.image, f.box)
            s = _sharpness(face)
            if s > self.sharpest.get(key, (-1.0, None))[0]:
                self.sharpest[key] = (s, face)
            for label, p in (f.scores or {}).items():  # none for a face turned away
                if p > self.peaks.get((*key, label), (-1.0, None))[0]:
                    self.peaks[(*key, label)] = (p, face)

    def thumbnail(self, source: str, track: int, label: str | None = None) -> str:
        """A data: URL of the track's sharpest face, or of its face at ``label``'s peak."""
        got = (
            self.sharpest.get((source, track))
            if label is None
            else self.peaks.get((source, track, label))
        )
        return _jpeg(got[1] if got else None)

    def summaries(
        self,
        events=(),
        baseline: str | None = None,
        offsets: dict | None = None,
        calibrate: str | None = None,
        prior_weights=None,
    ) -> list[ClipSummary]:
        return self.summarizer.summaries(
            events=events,
            baseline=baseline,
            offsets=offsets,
            calibrate=calibrate,
            prior_weights=prior_weights,
        )


STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:24px} h2{font-size:19px;margin-top:36px;border-top:1px solid #ddd;padding-top:16px}
table{border-collapse:collapse;font-size:13px} td,th{padding:4px 8px;border-bottom:1px solid #eee;
text-align:right} th{background:#f6f6f6} td:first-child,th:first-child{text-align:left}
.track{display:grid;grid-template-columns:120px 1fr;gap:12px;margin:18px 0}
.peaks{display:flex;gap:8px;flex-wrap:wrap} .peaks figure{margin:0;text-align:center;font-size:12px}
.short{color:#a00} .note{color:#555;font-size:13px} td.on{font-weight:600;background:#fdebd3}
"""


def write_report(
    collector: Collector,
    out: str | Path,
    csv_path: str | Path | None = None,
    study: StudyPlan | None = None,
    prior_weights=None,
) -> dict:
    """Write the HTML page (and, with ``csv_path``, one CSV row per track; with a ``study``,
    one row per participant and event instead): both or neither (each is written whole beside
    its place, and both are renamed once both are whole), :class:`InputError` naming the file
    that could not be written. Returns ``{"path", "bytes", "clips", "tracks"}``."""
    page, clips, table = render_report(collector, study, prior_weights=prior_weights)
    out = Path(out)
    tracks = [(c, t) for c in clips for t in c.tracks]
    files = {out: page}
    if csv_path is not None:
        files[Path(csv_path)] = table.to_csv() if table is not None else track_csv(tracks)
    write_together(files)
    return {
        "path": str(out),
        "bytes": out.stat().st_size,
        "clips": len(clips),
        "tracks": len(tracks),
    }


def render_report(
    collector: Collector, study: StudyPlan | None = None, cancelled=None, prior_weights=None
):
    """The HTML page of what ``collector`` saw, the clips' summaries and, with a ``study``
    (events, baseline, participants), the study table (:class:`mobilefer.study.Study`).
    ``cancelled``: a function asked between tracks; when it answers True the work stops with
    :class:`InputError` (a server's client went away). Charts are drawn for the
    :data:`MAX_DRAWN_TRACKS` longest tracks of a clip; every track is a row of the table.
    ``prior_weights``: the model's class weights, kept whole by a calibration (``study``'s
    ``calibrate``)."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    plan = study or StudyPlan()
    clips = collector.summaries(
        plan.events, plan.baseline, plan.offsets(), plan.calibrate, prior_weights
    )
    timed = any(c.events for c in clips)  # events place videos' frames; photos have none
    table = compare(clips, plan.participants, plan.baseline) if timed else None
    rows, sections = [], []
    for clip in clips:
        if clip.kind == "images":
            share = clip.share or {}
            rows.append(
                [
                    clip.source,
                    "photos",
                    f"{clip.images} images, {clip.faces} faces",
                    "",
                    max(share, key=share.get) if share else "no face",
                    "",
                    "",
                ]
            )
            continue
        sections.append(
            f"<h2>{html.escape(clip.source)}</h2><p class=note>{clip.frames} "
            f"frames, {len(clip.tracks)} face track(s)</p>"
            + event_table(
                clip.events,
                clip.labels,
                "The participant (the largest face scored in each frame) in each event",
            )
        )
        if not clip.tracks:
            sections.append("<p>No face was found in this clip.</p>")
        longest = sorted(clip.tracks, key=lambda t: -t.frames)[:MAX_DRAWN_TRACKS]
        drawn = {t.track_id for t in longest}
        if len(drawn) < len(clip.tracks):
            sections.append(
                f"<p class=note>Charts for the {len(drawn)} longest of "
                f"{len(clip.tracks)} tracks; the others are rows of the table "
                "above.</p>"
            )
        for tr in clip.tracks:
            if cancelled is not None and cancelled():
                raise InputError(f"{clip.source}: the report was cancelled")
            mean_v = float(np.mean([v for _, v in tr.valence])) if tr.valence else 0.0
            flag = " (short)" if tr.short else ""
            seen = f"{clock(tr.first_time)}-{clock(tr.last_time)}"
            rows.append(
                [
                    clip.source,
                    f"face {tr.track_id}{flag}",
                    seen,
                    str(tr.frames),
                    tr.dominant,
                    f"{tr.share[tr.dominant]:.0%}",
                    f"{mean_v:+.2f}",
                ]
            )
            if tr.track_id not in drawn:
                continue
            thumb = collector.thumbnail(clip.source, tr.track_id)
            face = {k: collector.thumbnail(clip.source, tr.track_id, k) for k in tr.peaks}
            peaks = "".join(
                f"<figure><img src='{face[k]}' width=72 height=72 alt='{html.escape(k)}'>"
                f"<figcaption>{html.escape(k)} {p.probability:.0%}<br>"
                f"{clock(p.time)}</figcaption></figure>"
                for k, p in tr.peaks.items()
            )
            times, probs = collector.summarizer.series(clip.source, tr.track_id)
            figs = [timeline_chart(clip, tr, (times, probs)), valence_chart(tr)]
            names, units = collector.summarizer.unit_series(clip.source, tr.track_id)
            if names:
                figs.append(units_chart(tr, times, names, units))
            figs.append(shares_chart(clip, tr))
            plots = "".join(
                pio.to_html(
                    f, full_html=False, include_plotlyjs=False, config={"displaylogo": False}
                )
                for f in figs
            )
            short = (
                f"<p class=short>Seen in only {tr.frames} frames: maybe a passing face or "
                "a false detection.</p>"
                if tr.short
                else ""
            )
            turned = (
                f"<p class=note>Turned away (not scored) in {tr.turned} frames.</p>"
                if tr.turned
                else ""
            )
            sections.append(
                f"<div class=track data-track='{tr.track_id}'><div><img src='{thumb}' width=112 "
                f"height=112 alt='face {tr.track_id}'><p>face {tr.track_id}<br>"
                f"{clock(tr.first_time)}-{clock(tr.last_time)}</p></div><div>{short}{turned}"
                f"{plots}{event_table(tr.events, clip.labels, 'This face in each event')}"
                f"{unit_table(tr.events, 'Its action units in each event (mean)')}"
                f"<p class=note>Peak moments</p><div class=peaks>{peaks}</div></div></div>"
            )
    head = ["clip", "face", "seen", "frames", "mostly", "share", "mean valence"]
    table_html = (
        "<table id=compare><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
        )
        + "</table>"
    )
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>mobilefer report</title>"
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        "<h1>Facial expressions over time</h1><p class=note>One row per face tracked in each "
        "clip: when it was seen, its most frequent expression and its mean valence (happy minus "
        "the strongest of sad, angry, fear and disgust, from -1 to 1). Expressions are what a "
        "face shows, not what a person feels; the labels are FER2013's.</p>"
        f"{calibration_note(plan, clips)}{table_html}{study_section(table) if table else ''}"
        f"{''.join(sections)}</body></html>"
    )
    return page, clips, table


def calibration_note(plan: StudyPlan, clips) -> str:
    """The page's line on calibration: on which event, and the faces it reached."""
    if plan.calibrate is None:
        return ""
    tracks = [t for c in clips for t in c.tracks]
    done = sum(t.calibrated for t in tracks)
    return (
        f"<p class=note id=calibrated><strong>Calibrated:</strong> each face's "
        f"probabilities were divided by those of its own frames in "
        f"<em>{html.escape(plan.calibrate)}</em> (its resting face; {done} of {len(tracks)} "
        "face tracks were seen there, the others are as read).</p>"
    )


def track_csv(tracks) -> str:
    """One row per track: source, track, times, frames, dominant, share_* and mean_* per
    label (and mean_AU* with the face mesh), as CSV text with a header."""
    labels = tracks[0][0].labels if tracks else ()
    units = next((tuple(t.action_units) for _, t in tracks if t.action_units), ())
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(
        [
            cell(c)
            for c in [
                "source",
                "track_id",
                "first_time",
                "last_time",
                "frames",
                "short",
                "dominant",
                *(f"share_{k}" for k in labels),
                *(f"mean_{k}" for k in labels),
                "calibrated",
                *(f"mean_{u}" for u in units),
            ]
        ]
    )
    for clip, t in tracks:
        w.writerow(
            [
                cell(clip.source),
                t.track_id,
                t.first_time,
                t.last_time,
                t.frames,
                t.short,
                cell(t.dominant),
                *(round(t.share[k], 4) for k in labels),
                *(round(t.mean[k], 4) for k in labels),
                "true" if t.calibrated else "false",
                *((t.action_units or {}).get(u, "") for u in units),
            ]
        )
    return f.getvalue()
