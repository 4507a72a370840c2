"""The face mesh: 478 points, 52 blendshapes, head angles and action units for each face found,
from MediaPipe Face Landmarker's models (``face_landmarker.task``, Apache-2.0, shipped inside the
package) run by LiteRT, Google's TFLite runtime (the ``[mesh]`` extra: ``ai-edge-litert``).

Our detector still finds the faces; :class:`FaceMesh` takes each face's box and five landmarks,
cuts the face upright (turned so the eyes are level, 1.5 times the box, as MediaPipe's own graph
cuts it), and runs ``face_landmarks_detector.tflite`` (256 x 256 RGB in 0-1 -> 478 x, y, z) and
``face_blendshapes.tflite`` (146 of the points, in image pixels -> 52 scores in 0-1).

Conventions: images are BGR uint8 H x W x 3; points are ``(x, y, z)`` in input-image pixels
(z: depth, larger away from the camera, in the same units as x); angles are degrees as in
:mod:`mobilefer.pose` (yaw > 0 toward the image's right, pitch > 0 up, roll > 0 clockwise),
from a weighted Procrustes fit of MediaPipe's canonical face to the mesh placed in MediaPipe's
camera (:func:`mesh_angles`, :func:`metric_points`: the geometry behind MediaPipe's facial
transformation matrix). Blendshape scores and the action units made from them
(:mod:`mobilefer.action_units`) are MediaPipe's estimates in 0-1, not a FACS coder's.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, ModelError

#: The task bundle that ships inside the package (NOTICE), and its members used here.
TASK = "face_landmarker.task"
LANDMARKS_MODEL = "face_landmarks_detector.tflite"
BLENDSHAPES_MODEL = "face_blendshapes.tflite"
GEOMETRY = "geometry_pipeline_metadata_landmarks.binarypb"
#: The landmark model's input side, and how much larger than the face box its crop is.
INPUT_SIDE = 256
ROI_SCALE = 1.5
#: Below this face-presence probability the mesh is not a face (MediaPipe's default).
MIN_PRESENCE = 0.5

#: The 146 of the 478 points the blendshape model reads (MediaPipe's face_blendshapes_graph.cc).
BLENDSHAPE_POINTS = (
    *(0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63),
    *(65, 66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132),
    *(133, 136, 144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160, 161),
    *(162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251, 263),
    *(267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310),
    *(311, 312, 314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373),
    *(374, 375, 377, 378, 379, 380, 381, 382, 384, 385, 386, 387, 388, 389, 390, 397, 398),
    *(400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477),
)
#: The 52 blendshapes in the model's output order (ARKit's names; "Left" is the person's left).
BLENDSHAPES = (
    *("_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft"),
    *("browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft"),
    *("eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight"),
    *("eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft"),
    *("eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen"),
    *("jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft"),
    *("mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight"),
    *("mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower"),
    *("mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight"),
    *("mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight"),
    *("noseSneerLeft", "noseSneerRight"),
)


@dataclass(frozen=True)
class MeshFace:
    """The mesh of one face: ``points`` 478 x 3 ``(x, y, z)`` in input pixels, ``presence``
    (0-1: how sure the model is a face is there), ``blendshapes`` (name -> 0-1, in
    :data:`BLENDSHAPES` order) and ``angles`` ``(yaw, pitch, roll)`` in degrees."""

    points: np.ndarray
    presence: float
    blendshapes: dict[str, float]
    angles: tuple[float, float, float]


def task_path() -> Path:
    """The ``face_landmarker.task`` that ships inside the package."""
    return Path(str(resources.files("mobilefer") / "models" / TASK))


def read_geometry(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vertices, ids, weights)`` of MediaPipe's canonical face from the task's
    ``geometry_pipeline_metadata_landmarks.binarypb``: 468 x 3 vertices (cm; x toward the
    person's left, y up, z toward the viewer) and the weighted points its Procrustes fit uses."""
    message = _geometry_message()()
    message.ParseFromString(blob)
    buffer = np.asarray(message.canonical_mesh.vertex_buffer, np.float64)
    if buffer.size == 0 or buffer.size % 5:
        raise ModelError(f"{GEOMETRY}: no canonical face in it (x, y, z, u, v per vertex)")
    vertices = buffer.reshape(-1, 5)[:, :3]
    basis = message.procrustes_landmark_basis
    ids = np.array([b.landmark_id for b in basis], np.int64)
    weights = np.array([b.weight for b in basis], np.float64)
    if len(ids) == 0 or ids.max() >= len(vertices):
        raise ModelError(f"{GEOMETRY}: its weighted points do not index the canonical face")
    return vertices, ids, weights


@functools.cache
def _geometry_message():
    """The message class of MediaPipe's GeometryPipelineMetadata (the fields read here), built
    from a descriptor so that protobuf itself parses the file."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="mobilefer_geometry.proto", package="mobilefer_geometry", syntax="proto2"
    )

    def message(name, *specs):
        m = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in specs:
            f = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = f".mobilefer_geometry.{type_name}"

    one, many = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message(
        "Mesh3d",
        ("vertex_type", 1, F.TYPE_INT32, one, None),
        ("primitive_type", 2, F.TYPE_INT32, one, None),
        ("vertex_buffer", 3, F.TYPE_FLOAT, many, None),
        ("index_buffer", 4, F.TYPE_UINT32, many, None),
    )
    message(
        "WeightedLandmarkRef",
        ("landmark_id", 1, F.TYPE_UINT32, one, None),
        ("weight", 2, F.TYPE_FLOAT, one, None),
    )
    message(
        "GeometryPipelineMetadata",
        ("canonical_mesh", 1, F.TYPE_MESSAGE, one, "Mesh3d"),
        ("procrustes_landmark_basis", 2, F.TYPE_MESSAGE, many, "WeightedLandmarkRef"),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    found = pool.FindMessageTypeByName("mobilefer_geometry.GeometryPipelineMetadata")
    return message_factory.GetMessageClass(found)


def similarity(source: np.ndarray, target: np.ndarray, weights: np.ndarray):
    """``(scale, rotation)`` of the weighted similarity fit ``s R source + t ~ target``
    (Umeyama's method; points are rows)."""
    w = weights / weights.sum()
    centred_s, centred_t = source - w @ source, target - w @ target
    cov = (centred_t * w[:, None]).T @ centred_s
    u, sig, vt = np.linalg.svd(cov)
    signs = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    scale = float((sig * signs).sum() / (w * (centred_s**2).sum(axis=1)).sum())
    return scale, u @ np.diag(signs) @ vt


def procrustes(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The rotation R (3 x 3) of the weighted similarity fit ``s R source + t ~ target``."""
    return similarity(source, target, weights)[1]


#: MediaPipe's camera for the facial transformation matrix: vertical field of view (degrees)
#: and near plane (cm).
FOV_DEG, NEAR = 63.0, 1.0


def metric_points(points: np.ndarray, size: tuple[int, int], fit) -> np.ndarray:
    """The mesh (image pixels; z away from the camera, on x's scale) in MediaPipe's metric
    space (cm; x right, y up, z toward the viewer) as its geometry pipeline makes it: the points
    laid on the near plane of a camera with :data:`FOV_DEG`, their depth set by the canonical
    face's scale (``fit(points) -> scale``, two rounds), then seen in perspective."""
    width, height = size
    near_h = 2 * NEAR * math.tan(math.radians(FOV_DEG) / 2)
    near_w = width * near_h / height
    x = -near_w / 2 + points[:, 0] / width * near_w
    y = -near_h / 2 + (1 - points[:, 1] / height) * near_h
    z = points[:, 2] / width * near_w
    offset = z.mean()

    def placed(scale):
        depth = (z - offset + NEAR) / scale
        return np.column_stack([x * depth / NEAR, y * depth / NEAR, -depth])

    first = fit(np.column_stack([x, y, -z]))
    return placed(first * fit(placed(first)))


def mesh_angles(
    points: np.ndarray,
    vertices: np.ndarray,
    ids: np.ndarray,
    weights: np.ndarray,
    size: tuple[int, int] | None = None,
) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees (:mod:`mobilefer.pose`'s conventions) of a mesh
    (478 x 3 image points, z away from the camera) by the weighted Procrustes fit of the
    canonical face (``vertices``, ``ids``, ``weights``: :func:`read_geometry`). With the image's
    ``size`` (w, h), in MediaPipe's camera (:func:`metric_points`): its facial transformation
    matrix; without, seen from afar (orthographic)."""
    canonical = vertices[ids]

    def fit(target):
        return similarity(canonical, target[ids], weights)[0]

    flip = np.array([1.0, -1.0, -1.0])  # y down, z away <-> y up, z toward the viewer
    target = points * flip if size is None else metric_points(points, size, fit)
    rot = procrustes(canonical, target[ids], weights)
    rot = flip[:, None] * rot * flip[None, :]  # the rotation in camera axes: y down, z away
    facing = rot @ np.array([0.0, 0.0, -1.0])  # where the face points, toward the camera
    across = rot @ np.array([1.0, 0.0, 0.0])  # from the right eye to the left
    yaw = math.degrees(math.atan2(facing[0], -facing[2]))
    pitch = math.degrees(math.atan2(-facing[1], math.hypot(facing[0], facing[2])))
    roll = math.degrees(math.atan2(across[1], across[0]))
    return round(yaw, 1), round(pitch, 1), round(roll, 1)


def face_crop(box, landmarks, side: int = INPUT_SIDE) -> np.ndarray:
    """The 2 x 3 affine matrix from image pixels to the landmark model's ``side`` x ``side``
    input: a square of :data:`ROI_SCALE` times the box's longer side around its centre, turned
    so that the eyes (the first two of the five landmarks) are level."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    angle = 0.0
    if landmarks is not None and len(landmarks) >= 2:
        (rx, ry), (lx, ly) = landmarks[0], landmarks[1]
        angle = math.atan2(ly - ry, lx - rx)  # the eyes' line, in image axes (y down)
    size = ROI_SCALE * max(w, h)
    scale = side / size
    cos, sin = math.cos(-angle) * scale, math.sin(-angle) * scale
    # rotate by -angle about the centre, scale, then move the centre to the input's centre
    return np.array(
        [[cos, -sin, side / 2 - cos * cx + sin * cy], [sin, cos, side / 2 - sin * cx - cos * cy]]
    )


@contextlib.contextmanager
def _native_stderr_quiet():
    """Native code's writes to file descriptor 2 go nowhere inside this block (LiteRT prints an
    INFO line from C++ that no setting turns off); Python's ``sys.stderr`` is flushed first."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 to quiet
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class FaceMesh:
    """MediaPipe Face Landmarker's mesh and blendshape models on LiteRT, for faces our detector
    found. ``FaceMesh()`` opens the task file that ships inside the package (``path``: another
    copy); ``threads``: LiteRT's threads. Raises :class:`ImportError` without the ``[mesh]``
    extra and :class:`ModelError` for a file that is not a Face Landmarker task."""

    def __init__(self, path: str | Path | None = None, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path) if path is not None else task_path()
        try:
            with zipfile.ZipFile(self.path) as z:
                members = {n: z.read(n) for n in (LANDMARKS_MODEL, BLENDSHAPES_MODEL, GEOMETRY)}
        except (OSError, KeyError, zipfile.BadZipFile) as e:
            raise ModelError(
                f"{self.path}: not a MediaPipe face_landmarker.task ({e}); reinstall mobilefer"
            ) from None
        self.vertices, self.ids, self.weights = read_geometry(members[GEOMETRY])
        with _native_stderr_quiet():  # LiteRT's C++ "INFO: Created ... XNNPACK delegate" line
            self._mesh = Interpreter(model_content=members[LANDMARKS_MODEL], num_threads=threads)
            self._shapes = Interpreter(
                model_content=members[BLENDSHAPES_MODEL], num_threads=threads
            )
            for it in (self._mesh, self._shapes):
                it.allocate_tensors()
        self._mesh_in = self._mesh.get_input_details()[0]["index"]
        outs = self._mesh.get_output_details()
        self._points_out = next(o["index"] for o in outs if o["shape"][-1] == 478 * 3)
        self._presence_out = next(o["index"] for o in outs if o["name"].endswith("_1"))
        self._shapes_in = self._shapes.get_input_details()[0]["index"]
        self._shapes_out = self._shapes.get_output_details()[0]["index"]

    def points(self, image: np.ndarray, box, landmarks=None) -> tuple[np.ndarray, float]:
        """``(points, presence)``: the 478 x 3 mesh of the face in ``box`` (``(x, y, w, h)``;
        ``landmarks``: its five points, which set the crop's turn) in image pixels."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"the mesh takes BGR uint8 H x W x 3 images, got {image.shape}")
        matrix = face_crop(box, landmarks)
        crop = cv2.warpAffine(
            image,
            matrix,
            (INPUT_SIDE, INPUT_SIDE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        x = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
        self._mesh.set_tensor(self._mesh_in, x)
        self._mesh.invoke()
        pts = self._mesh.get_tensor(self._points_out).reshape(478, 3).astype(np.float64)
        logit = float(self._mesh.get_tensor(self._presence_out).ravel()[0])
        back = cv2.invertAffineTransform(matrix)
        xy = pts[:, :2] @ back[:, :2].T + back[:, 2]
        scale = math.hypot(back[0, 0], back[1, 0])  # image pixels per input pixel
        points = np.column_stack([xy, pts[:, 2] * scale])
        return points, 1.0 / (1.0 + math.exp(-logit))

    def blendshapes(self, points: np.ndarray) -> np.ndarray:
        """The 52 blendshape scores (0-1, :data:`BLENDSHAPES` order) of a mesh in image pixels."""
        xy = points[list(BLENDSHAPE_POINTS), :2].astype(np.float32)[None]
        self._shapes.set_tensor(self._shapes_in, xy)
        self._shapes.invoke()
        return np.clip(self._shapes.get_tensor(self._shapes_out).ravel(), 0.0, 1.0)

    def __call__(self, image: np.ndarray, box, landmarks=None) -> MeshFace | None:
        """The :class:`MeshFace` of the face in ``box`` of ``image`` (BGR uint8), or ``None``
        where the model sees no face there (presence under :data:`MIN_PRESENCE`)."""
        points, presence = self.points(image, box, landmarks)
        if presence < MIN_PRESENCE:
            return None
        shapes = self.blendshapes(points)
        size = (image.shape[1], image.shape[0])
        angles = mesh_angles(points, self.vertices, self.ids, self.weights, size)
        named = {n: round(float(v), 4) for n, v in zip(BLENDSHAPES, shapes, strict=True)}
        return MeshFace(points, round(presence, 4), named, angles)
