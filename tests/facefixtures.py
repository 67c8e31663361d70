"""Face-set fixtures built from two public-domain sample photos, for tests that need real faces.

``astronaut`` (scikit-image's Eileen Collins) and ``hopper`` (matplotlib's Grace Hopper) are
detected with dlib, landmarked with dlib's 68-point predictor (both from face_recognition_models),
then jittered (small rotation, scale, shift, brightness) to make many distinct frames per identity.
:func:`add_identity` writes the aligned crops and inserts ``identities``/``clips``/``faces`` rows
exactly as extraction would, so ``doppel.faceset.query.faces`` reads them back.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from conftest import raw_db
from doppel.io.image import decode_image, write_image
from doppel.ops.align import estimate_transform, transform_points, warp_to_face
from doppel.store import Workspace
from doppel.store.db import to_blob
from doppel.store.records import NewClip
from doppel.workflow.workspace import create_workspace

SAMPLES = ("astronaut", "hopper")


def _models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "models"


@functools.cache
def sample_image(name: str) -> np.ndarray:
    """RGB uint8 photo of one face."""
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut())
    if name == "hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
            return decode_image(fh.read())
    raise ValueError(f"unknown sample {name!r}; known: {SAMPLES}")


@functools.cache
def sample_landmarks(name: str) -> np.ndarray:
    """68-point landmarks ``(68, 2)`` float64 of the face in :func:`sample_image`, computed by dlib."""
    import dlib

    image = sample_image(name)
    detector = dlib.get_frontal_face_detector()
    boxes = detector(image, 1)
    assert len(boxes) >= 1, f"dlib found no face in {name}"
    box = max(boxes, key=lambda b: b.area())
    predictor = dlib.shape_predictor(str(_models_dir() / "shape_predictor_68_face_landmarks.dat"))
    shape = predictor(image, box)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def jittered_frames(name: str, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (frame RGB uint8, landmarks (68, 2)) pairs: the sample photo moved and relit a little."""
    image, lm = sample_image(name), sample_landmarks(name)
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    centre = lm.mean(0)
    out = []
    for i in range(n):
        if i == 0:
            m = np.array([[1.0, 0, 0], [0, 1.0, 0]])
            gain = 1.0
        else:
            m = cv2.getRotationMatrix2D(tuple(centre), rng.uniform(-8, 8), rng.uniform(0.92, 1.08))
            m[:, 2] += rng.uniform(-6, 6, 2)
            gain = rng.uniform(0.85, 1.15)
        frame = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT101)
        frame = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        out.append((frame, transform_points(lm, m)))
    return out


def add_identity(ws: Workspace, identity: str, sample: str, n: int = 12, *, size: int = 128,
                 face_type: str = "full", seed: int = 0) -> list[int]:
    """Insert ``n`` aligned faces of ``sample`` for ``identity``; returns the face ids."""
    ident = ws.identities.ensure(identity)
    out_dir = ws.faceset_dir(identity)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = jittered_frames(sample, n, seed)
    ids = []
    clip = ws.clips.add(NewClip(path=f"{sample}.png", content_hash=f"fixture-{identity}-{sample}-{seed}",
                                kind="images", width=frames[0][0].shape[1], height=frames[0][0].shape[0],
                                fps=25.0, frame_count=n, duration=n / 25.0, has_audio=False))
    with raw_db(ws) as c:
        for k, (frame, lm) in enumerate(frames):
            matrix = estimate_transform(lm, size, face_type)  # type: ignore[arg-type]
            crop = warp_to_face(frame, matrix, size)
            path = out_dir / f"{clip:04d}_{k:06d}.png"
            write_image(path, crop)
            x0, y0 = lm.min(0)
            x1, y1 = lm.max(0)
            cur = c.execute(
                "INSERT INTO faces (identity_id, clip_id, frame_index, time, x0, y0, x1, y1, det_score, landmarks,"
                " landmarks_smooth, yaw, pitch, roll, blur, transform, face_type, size, aligned_path)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1.0, ?, ?, 0, 0, 0, 100.0, ?, ?, ?, ?)",
                (ident, clip, k, k / 25.0, x0, y0, x1, y1, to_blob(lm), to_blob(lm), to_blob(matrix, "<f8"),
                 face_type, size, ws.rel(path)))
            ids.append(int(cur.lastrowid))  # type: ignore[arg-type]
    return ids


def make_workspace(root: Path, n: int = 12, size: int = 128, *, consent: bool = True) -> Workspace:
    """A new workspace at ``root`` with identities ``astronaut`` and ``hopper`` (``n`` faces each),
    with consent records for both unless ``consent`` is False (both photos are public domain)."""
    ws = create_workspace(root)
    add_identity(ws, "astronaut", "astronaut", n, size=size)
    add_identity(ws, "hopper", "hopper", n, size=size, seed=1)
    if consent:
        from doppel.provenance.consent import add_consent

        for name in ("astronaut", "hopper"):
            add_consent(ws, name, subject=f"{name} (public-domain sample photo)", scope="doppel tests",
                        basis="public-domain-demo")
    return ws
