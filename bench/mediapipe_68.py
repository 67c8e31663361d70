"""Derive which MediaPipe face-mesh vertex best matches each of dlib's 68 iBUG landmarks.

Run in an environment with ``mediapipe==0.10.21`` (the ``mediapipe`` extra)::

    python bench/mediapipe_68.py [CLIP ...]   # default: every shared clip, every 10th frame

For every frame where both find one face, landmarks are normalised by the inter-ocular distance
(dlib's eye centres); for each dlib point the mesh vertex with the smallest median distance is
chosen. The table it prints is ``doppel.extract.mediapipe_mesh.IBUG68_FROM_MESH``; the median
errors (in inter-ocular units) say how well each point corresponds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from doppel.extract import backends
from doppel.extract.mediapipe_mesh import mesh_points
from doppel.io.video import read_frames
from doppel.ops.face import interocular

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def pairs(clips: list[Path], step: int = 10) -> tuple[np.ndarray, np.ndarray]:
    import mediapipe as mp

    det, lmk = backends.detector("dlib-hog"), backends.landmarker("dlib-68")
    dl, mm = [], []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        for clip in clips:
            for frame in read_frames(clip, every=step):
                found = det.detect(frame.image)
                pts = mesh_points(mesh, frame.image)
                if len(found) != 1 or pts is None:
                    continue
                dl.append(lmk.landmarks(frame.image, found[0].box))
                mm.append(pts)
    return np.stack(dl).astype(np.float64), np.stack(mm).astype(np.float64)


def derive(dl: np.ndarray, mm: np.ndarray) -> tuple[list[int], np.ndarray]:
    iod = interocular(dl)  # (F,)
    table, errors = [], []
    for i in range(68):
        d = np.linalg.norm(mm - dl[:, i:i + 1], axis=2) / iod[:, None]  # (F, V)
        med = np.median(d, axis=0)
        j = int(np.argmin(med))
        table.append(j)
        errors.append(med[j])
    return table, np.asarray(errors)


if __name__ == "__main__":
    clips = [Path(a) for a in sys.argv[1:]] or sorted(MEDIA.glob("*.mp4"))
    dl, mm = pairs(clips)
    table, err = derive(dl, mm)
    print(f"{len(dl)} frames from {len(clips)} clips")
    print("IBUG68_FROM_MESH = (", ", ".join(map(str, table)), ")")
    print("median error (inter-ocular units):", np.round(err, 3).tolist())
    print("mean", float(err.mean()))
