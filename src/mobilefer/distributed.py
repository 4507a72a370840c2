"""Batch recognition on Ray Data (needs the ``[ray]`` extra): the same records as
``mobilefer predict``, from one laptop to a cluster.

    import ray, mobilefer.distributed
    ray.init()                                        # or ray.init(address="auto") on a cluster
    ds = mobilefer.distributed.predict(["photos/", "s3://bucket/interviews/"])
    ds.write_parquet("s3://bucket/results/")

Inputs are read by the workers: local paths (files, folders, globs; on a cluster they must be
on storage every node sees) with mobilefer's own readers, remote URIs (``s3://``, ``gs://``,
anything pyarrow opens) with Ray's binary reader, or a ``ray.data.Dataset`` with a ``path``
column (and optionally ``bytes``). A pool of actors holds one :class:`mobilefer.Recognizer`
each. Every image gives its face records, or one no-face record; every video is one unit of
work, tracked as ``predict`` tracks it; a file that cannot be read gives one error record
(``error`` set) and never fails the job; files that are neither image nor video are skipped.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError
from .options import Options
from .records import RECORD_FIELDS
from .sinks import arrow_schema

#: The largest pool of actors: each holds a Recognizer (about 150 MB); 100,000 hung at 5.6 GB.
MAX_ACTORS = 1024
#: Fields of every record: those of ``mobilefer predict``'s JSON Lines, and ``error`` (the
#: optional ones, such as ``action_units``, only where an option fills them).
FIELDS = (*(f.name for f in RECORD_FIELDS if not f.optional), "error")


class RecognizeBatch:
    """The actor: one Recognizer, turning batches of files into batches of records."""

    def __init__(self, recognizer_options: dict, stream_options: dict) -> None:
        from .recognizer import Recognizer

        self.rec = Recognizer(**recognizer_options)
        self.options = stream_options
        extras = Options(**recognizer_options).record_extras()
        self.schema = arrow_schema(self.rec.labels, extras)

    def __call__(self, batch):
        import pyarrow as pa

        rows = batch.to_pylist()
        out: list[dict] = []
        for row in rows:
            out += self.one(row["path"], row.get("bytes"))
        names = self.schema.names
        return pa.Table.from_pylist([{k: r.get(k) for k in names} for r in out], self.schema)

    def one(self, path: str, data: bytes | None) -> list[dict]:
        from .image import IMAGE_SUFFIXES, MAX_PIXELS, VIDEO_SUFFIXES, decode_image

        suffix = Path(path).suffix.lower()
        try:
            if data is not None and suffix in IMAGE_SUFFIXES:
                image = decode_image(data, path, self.options.get("max_pixels", MAX_PIXELS))
                (result,) = self.rec.stream(image, **self.options)
                return [r | {"source": path} for r in result.records()]
            if data is not None and suffix in VIDEO_SUFFIXES:
                return self._video_bytes(path, data)
            if data is not None:
                return []  # neither image nor video: skipped, as predict skips it
            return self._local(path)
        except InputError as e:
            return [{"source": path, "error": str(e)}]

    def _local(self, path: str) -> list[dict]:
        out = []
        for result in self.rec.stream(path, **self.options):
            if result.error:
                out.append({"source": result.source, "error": result.error})
            else:
                out += result.records()
        return out

    def _video_bytes(self, path: str, data: bytes) -> list[dict]:
        with tempfile.TemporaryDirectory(prefix="mobilefer-ray-") as tmp:
            local = Path(tmp) / ("video" + Path(path).suffix.lower())
            local.write_bytes(data)
            return [r | {"source": path} for r in self._local(str(local))]


def _local_files(specs: list[str]) -> list[str]:
    """Local specs expanded as ``predict`` expands them (errors become error rows)."""
    from .sources import expand

    rows = []
    for spec in specs:
        try:
            rows += [s.spec for s in expand([spec]) if s.kind in ("image", "video", "irregular")]
        except InputError:
            rows.append(spec)  # read in a worker, where it becomes an error record
    return rows


def predict(
    source,
    options: Options | None = None,
    *,
    actors: int = 2,
    batch_size: int = 16,
    cpus_per_actor: float = 1.0,
):
    """A lazy ``ray.data.Dataset`` of face records (see :data:`FIELDS`) for ``source``.

    ``source``: a path or URI, a list of them, or a Dataset with a ``path`` column (and
    ``bytes``, as ``ray.data.read_binary_files(..., include_paths=True)`` gives). ``options``:
    the :class:`mobilefer.options.Options` of each actor's Recognizer and its streams (default:
    the defaults). ``actors``: size of the pool of Recognizer actors (1 to
    :data:`MAX_ACTORS`); ``batch_size``: files per call.
    """
    import ray.data

    from .errors import OptionError

    options = (options or Options()).check()
    if not (1 <= actors <= MAX_ACTORS) or batch_size < 1:
        raise OptionError(f"actors must lie in 1-{MAX_ACTORS} and batch_size be >= 1")
    if isinstance(source, ray.data.Dataset):
        parts = [source]
    else:
        specs = [os.fspath(s) for s in ([source] if isinstance(source, (str, Path)) else source)]
        remote = [s for s in specs if "://" in s]
        local = _local_files([s for s in specs if "://" not in s])
        parts = []
        if local:  # read by the workers with mobilefer's readers: a bad file is one record
            parts.append(ray.data.from_items([{"path": p} for p in local]))
        if remote:
            parts.append(ray.data.read_binary_files(remote, include_paths=True))
        if not parts:
            raise InputError("no input given")
    stream_options = options.stream_options()
    recognizer_options = options.recognizer_options()
    out = [
        ds.map_batches(
            RecognizeBatch,
            fn_constructor_kwargs={
                "recognizer_options": recognizer_options,
                "stream_options": stream_options,
            },
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus_per_actor,
        )
        for ds in parts
    ]
    return out[0].union(*out[1:]) if len(out) > 1 else out[0]


def batches(ds):
    """``ds.iter_batches`` as pyarrow tables, with a worker's :class:`MobileferError` (a broken
    model file, say) raised here as itself, one line, rather than as Ray's task traceback."""
    import ray.exceptions

    from .errors import MobileferError

    try:
        yield from ds.iter_batches(batch_format="pyarrow")
    except ray.exceptions.RayTaskError as e:
        cause = e.cause if isinstance(getattr(e, "cause", None), MobileferError) else None
        if cause is None:
            raise
        raise cause from None
