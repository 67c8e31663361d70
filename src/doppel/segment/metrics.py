"""How well a segmenter does: mask IoU and occluder leak, on held-out samples with synthetic occluders.

``iou`` compares binary masks (prediction and label at 0.5) over the pixels whose label is known;
``leak`` is the share of an occluder's pixels inside the face region that a matte still covers
(what a swap would paint over).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from doppel.segment.data import Sample, augmented
from doppel.segment.synth import Split

OCCLUDED_SHARE = 0.01  # a view counts as occluded when occluders cover at least this share of the face


def iou(pred: np.ndarray, target: np.ndarray, known: np.ndarray | None = None) -> float:
    """IoU of ``pred > 0.5`` and ``target > 0.5`` (float ``(S, S)``) where ``known``; 1.0 when both are empty."""
    p, t = pred > 0.5, target > 0.5
    if known is not None:
        p, t = p & known, t & known
    union = int((p | t).sum())
    return 1.0 if union == 0 else float((p & t).sum()) / union


def leak(matte: np.ndarray, occluder: np.ndarray, region: np.ndarray) -> float | None:
    """Mean matte over the occluder's pixels inside ``region`` (all float ``(H, W)``; occluder and region
    at 0.5), or None when the occluder does not reach the region."""
    on = (occluder > 0.5) & (region > 0.5)
    return float(matte[on].mean()) if on.any() else None


@dataclass
class Evaluation:
    iou_all: float
    iou_occluded: float
    iou_clean: float
    glasses_iou: float | None
    n: int
    n_occluded: int
    per_sample: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items() if k != "per_sample"}
        if details:
            out["per_sample"] = self.per_sample
        return out


def evaluate(predict: Any, samples: Sequence[Sample], *, split: Split = "held_out", views: int = 1,
             seed: int = 1234, batch: int = 32) -> Evaluation:
    """IoU of ``predict`` (crops uint8 ``(N, S, S, 3)`` -> float ``(N, 2, S, S)``, e.g.
    :meth:`Segmenter.probabilities`) on ``views`` occluded views of each sample (occluders of ``split``),
    without the random warp's colour changes weighing in beyond what training saw."""
    rng = np.random.default_rng(seed)
    imgs, tgts, wts, covers = [], [], [], []
    for s in samples:
        for _ in range(views):
            img, t, w, covered = augmented(s, rng, split=split, strength=0.5)
            imgs.append(np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8))
            tgts.append(t)
            wts.append(w)
            covers.append(covered)
    rows: list[dict[str, Any]] = []
    gl: list[float] = []
    for start in range(0, len(imgs), batch):
        probs = predict(np.stack(imgs[start:start + batch]))
        for k in range(len(probs)):
            i = start + k
            t, w, p = tgts[i], wts[i], probs[k]
            occluded = covers[i] >= OCCLUDED_SHARE
            rows.append({"iou": round(iou(p[0], t[0], w[0] > 0), 5), "occluded": occluded,
                         "covered": round(covers[i], 4)})
            if (t[1] > 0.5).any():
                gl.append(iou(p[1], t[1], w[1] > 0))
    occ = [r["iou"] for r in rows if r["occluded"]]
    clean_rows = [r["iou"] for r in rows if not r["occluded"]]
    return Evaluation(float(np.mean([r["iou"] for r in rows])), float(np.mean(occ)) if occ else float("nan"),
                      float(np.mean(clean_rows)) if clean_rows else float("nan"),
                      float(np.mean(gl)) if gl else None, len(rows), len(occ), rows)
