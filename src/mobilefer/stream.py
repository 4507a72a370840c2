"""``Recognizer.stream``: any source in, one :class:`Result` per frame out.

A source is an image path, a folder (recursive), a glob, a video file, a webcam index, a list of
these, one BGR image array, or any iterable of BGR arrays (frames of one stream). Images are
classified one by one; videos, webcams and iterables of arrays are tracked (a track id per face)
and their scores smoothed. An input that cannot be read gives a result with ``error`` set and the
stream goes on; a file in a folder that is neither image nor video gives a ``skipped`` result.
A :class:`Session` is one tracked stream fed a frame at a time (a live connection): videos,
webcams and iterables go through one each.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from .detectors import image_detect_size
from .errors import InputError
from .image import MAX_PIXELS, check_regular, read_image_pages, to_bgr
from .options import DETECT_EVERY, SMOOTHING, check_option
from .results import Face, Kind, Result
from .sources import SKIPPED, Source, expand, looks_like_video, read_video, read_webcam
from .tracking import ClassifyFn, DetectFn, FaceTracker


class Pipeline(Protocol):
    """What :func:`stream` uses of a :class:`mobilefer.Recognizer`: photos analysed whole, and
    tracked sessions for frames."""

    def analyze(self, image: np.ndarray, detect_size: int | None = None) -> list[Face]: ...

    def session(self, source: str = "array", kind: str = "array", **options) -> Session: ...


__all__ = ["Result", "Session", "stream", "image_detect_size"]

#: Detection size (longest side) for video, webcams and arrays: their faces are large and time
#: is short. Photos get :func:`mobilefer.detectors.image_detect_size`, as ``Recognizer.analyze``.
STREAM_DETECT_SIZE = 320


def _check(detect_every, smoothing, detect_size, max_frames, max_pixels) -> None:
    for name, value in (
        ("detect_every", detect_every),
        ("smoothing", smoothing),
        ("detect_size", detect_size),
        ("max_frames", max_frames),
        ("max_pixels", max_pixels),
    ):
        if value is not None:
            check_option(name, value)


def stream(
    recognizer: Pipeline,
    source,
    *,
    detect_every: int | None = None,
    smoothing: float | None = None,
    detect_size: int | None = None,
    max_frames: int = 0,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[Result]:
    """Results for every frame of ``source`` (see the module docstring), lazily.

    ``detect_every`` (default 10) and ``smoothing`` (default 0.6) apply to video, webcams and
    arrays; ``detect_size`` overrides the detection size of every source (images: by size,
    see :func:`image_detect_size`; others: 320); ``max_frames`` stops each video or webcam
    after that many frames (0: all); ``max_pixels`` refuses larger images.
    """
    _check(detect_every, smoothing, detect_size, max_frames, max_pixels)
    opts = {
        "detect_every": detect_every,
        "smoothing": smoothing,
        "detect_size": detect_size,
        "max_frames": max_frames,
    }
    if isinstance(source, np.ndarray):
        yield _image(recognizer, "array", to_bgr(source), detect_size, kind="array")
        return
    if isinstance(source, (bytes, bytearray, memoryview)):  # a path in bytes, as os gives it
        raw = bytes(source)
        if len(raw) > 4096 or b"\0" in raw:
            raise InputError(
                "source of bytes: pass a path (str or bytes), or decode an image's "
                "bytes first (mobilefer.image.decode_image)"
            )
        source = os.fsdecode(raw)
    if isinstance(source, (str, Path, int)):
        source = [source]
    if isinstance(source, (list, tuple)) and all(
        isinstance(s, (str, Path, int)) and not isinstance(s, bool) for s in source
    ):
        for spec in source:
            yield from _spec(recognizer, spec, max_pixels, opts)
        return
    if isinstance(source, Iterable) and not isinstance(source, (Mapping, Set)):
        yield from _iterable(recognizer, source, max_pixels, opts)
        return
    raise InputError(
        f"source of type {type(source).__name__}: pass a path, folder, glob, video, webcam "
        "index, a BGR image array, or an iterable of arrays"
    )


class Session:
    """One tracked stream fed a frame at a time (a live connection, a camera loop): each frame
    in, its :class:`Result` out, faces tracked (``track_id``) and their scores smoothed, as
    :func:`stream` does for video. It gets the parts it uses (``Recognizer.session`` gives
    them): ``detect`` and ``classify`` for its :class:`FaceTracker`, the model's ``labels`` and
    the ``detector``'s name for its results. ``source``, ``kind``, ``fps`` and ``root`` label
    the results; ``detect_every``, ``smoothing`` and ``detect_size`` are :func:`stream`'s
    options; ``describe(image, faces) -> faces``, where given, adds to each frame's faces
    (``Recognizer.with_mesh``: the face mesh). Its tracks live as long as it does.
    """

    def __init__(
        self,
        detect: DetectFn,
        classify: ClassifyFn,
        labels: tuple[str, ...],
        detector: str,
        source: str = "array",
        kind: Kind = "array",
        *,
        detect_every: int | None = None,
        smoothing: float | None = None,
        detect_size: int | None = None,
        fps: float | None = None,
        root: str | None = None,
        max_yaw: float | None = None,
        describe=None,
    ) -> None:
        _check(detect_every, smoothing, detect_size, 0, MAX_PIXELS)
        self._describe = describe
        self.labels, self.detector, self.source, self.kind = labels, detector, source, kind
        self.max_yaw = max_yaw
        self.fps, self.root = fps, root
        self._tracker = FaceTracker(
            detect,
            classify,
            detect_every=detect_every or DETECT_EVERY,
            smoothing=SMOOTHING if smoothing is None else smoothing,
            detect_size=STREAM_DETECT_SIZE if detect_size is None else detect_size,
        )

    def update(self, image: np.ndarray, frame: int | None = None, time: float | None = None):
        """The :class:`Result` of the next frame (a BGR image, or any image :func:`to_bgr`
        takes); ``frame`` and ``time`` (s) are stored in it as given."""
        image = to_bgr(image)
        faces = tuple(
            Face.from_probs(
                t.probs, self.labels, t.detection, self.detector, t.track_id, self.max_yaw
            )
            for t in self._tracker.update(image)
        )
        if self._describe is not None:
            faces = tuple(self._describe(image, faces))
        return Result(
            self.source,
            self.kind,
            faces,
            image,
            frame,
            time,
            self.root,
            fps=self.fps,
            detector=self.detector,
        )


def _image(rec, name, image, detect_size, kind="image", root=None) -> Result:
    faces = rec.analyze(image, detect_size=detect_size)  # None: analyze's photo policy
    return Result(name, kind, tuple(faces), image, root=root, detector=rec.detector.name)


def _spec(rec, spec, max_pixels, opts) -> Iterator[Result]:
    spec = str(spec)
    try:
        sources = expand([spec])
    except InputError as e:
        yield Result(spec, "error", error=str(e))
        return
    for src in sources:
        yield from _source(rec, src, max_pixels, opts)


def _source(rec, src: Source, max_pixels, opts) -> Iterator[Result]:
    if src.kind in SKIPPED:
        yield Result(src.spec, "skipped", root=src.root, reason=SKIPPED[src.kind], skip=src.kind)
        return
    if src.kind == "irregular":  # never opened: a pipe would block, a device never end
        try:
            check_regular(src.spec)
            error = f"{src.spec}: not a regular file"
        except InputError as e:
            error = str(e)
        yield Result(src.spec, "image", root=src.root, error=error)
        return
    if src.kind == "image":
        try:
            image, pages = read_image_pages(src.spec, max_pixels=max_pixels)
        except InputError as e:
            if looks_like_video(Path(src.spec)):  # a clip named like an image
                yield from _source(rec, replace(src, kind="video"), max_pixels, opts)
            else:
                yield Result(src.spec, "image", root=src.root, error=str(e))
            return
        result = _image(rec, src.spec, image, opts["detect_size"], root=src.root)
        if pages > 1:
            result = replace(result, reason=f"page 1 of {pages} read; the others are not")
        yield result
        return
    name = src.spec if src.kind == "video" else f"webcam:{src.spec}"
    try:
        frames = read_video(src.spec) if src.kind == "video" else read_webcam(int(src.spec))
        first = next(frames)  # opens the file or camera (or raises): its rate is known from here
        frames = itertools.chain([first], frames)
        yield from _tracked(rec, name, src.kind, frames, first.fps, src.root, opts)
    except InputError as e:
        yield Result(name, src.kind, root=src.root, error=str(e))


def _iterable(rec, items, max_pixels, opts) -> Iterator[Result]:
    """An iterable of arrays (frames of one tracked stream) that may hold paths too (read as
    specs are): an item that is no image gives an error result, and the stream goes on."""
    session, n = None, 0
    for i, item in enumerate(items):
        if isinstance(item, (str, Path, int)) and not isinstance(item, bool):
            yield from _spec(rec, item, max_pixels, opts)
            continue
        try:
            image = to_bgr(item)
        except InputError as e:
            yield Result("array", "array", frame=i, error=f"array frame {i}: {e}")
            continue
        session = session or _session(rec, opts)
        yield session.update(image, i)
        n += 1
        if opts["max_frames"] and n >= opts["max_frames"]:
            return


def _session(rec, opts, source="array", kind="array", fps=None, root=None) -> Session:
    return rec.session(
        source,
        kind,
        detect_every=opts["detect_every"],
        smoothing=opts["smoothing"],
        detect_size=opts["detect_size"],
        fps=fps,
        root=root,
    )


def _tracked(rec, name, kind, frames, fps, root, opts) -> Iterator[Result]:
    session = _session(rec, opts, name, kind, fps, root)
    for n, f in enumerate(frames, start=1):
        yield session.update(f.image, f.index, f.time)
        if opts["max_frames"] and n >= opts["max_frames"]:
            return
