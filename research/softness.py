"""Where a swap loses its detail: gradient energy of aligned faces, before any merge.

For a cached quality-lab model (``research/cache/runs/TAG/m``) of a pair SRC -> DST, measures the mean
squared Sobel gradient of the luma inside the face (the aligned landmark hull, shrunk) of:

- the true source faces the model held out, at the model's resolution and at the detail network's;
- the face model's reconstruction of them (the swap path on the source), and that through the detail network;
- the swap of destination faces, and that through the detail network;
- the true destination faces (what the swap replaces: the merge's sharpness ratio compares with these).

Each figure is divided by the true source's at the same resolution, so 1.0 is "as detailed as the source
really is". Usage: ``python research/softness.py TAG SRC DST [--n 120]``; writes
``research/results/softness-TAG.json``.

With ``--merged OUT.mp4 --original DST.mp4 --workspace WS`` (a merge of DST with that model, and a workspace
holding DST's faces) it also follows the merge: on every 5th frame, the crop at the detail network's size cut
from the original and from the merged frame, and the model's own face for that crop, compared inside the face
(``merge`` in the JSON: model / original, merged / model, merged / original).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from recipes import IdentitySwapper

from doppel.core.swap import Swapper
from doppel.store.workspace import Workspace
from doppel.train.data import face_hull_mask, load_faceset
from doppel.train.detail import held_out, load_detail
from doppel.train.detail_swapper import DetailSwapper
from doppel.train.swapper import TorchSwapper

HERE = Path(__file__).resolve().parent


def energy(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per face: mean squared Sobel magnitude of the luma (0-255 scale) inside the mask."""
    out = []
    for img, m in zip(images, masks, strict=True):
        y = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gx, gy = cv2.Sobel(y, cv2.CV_32F, 1, 0), cv2.Sobel(y, cv2.CV_32F, 0, 1)
        out.append(float(((gx * gx + gy * gy) * m).sum() / max(m.sum(), 1)))
    return np.asarray(out)


def masks_for(lms: np.ndarray, size: int) -> np.ndarray:
    k = max(3, size // 24) | 1
    return np.stack([cv2.erode(face_hull_mask(lm, size), np.ones((k, k), np.uint8)).astype(np.float32) / 255
                     for lm in lms])


def _u8(faces: np.ndarray) -> np.ndarray:
    return (np.clip(faces, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def run(face_model: Swapper, detail: Swapper | None, low: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The face model's faces for uint8 crops ``low`` and, with ``detail`` (the model folder's swapper with its
    detail network, as merge loads it), the detail network's; both uint8."""
    x = low.astype(np.float32) / 255
    return _u8(face_model.swap(x)[0]), (_u8(detail.swap(x)[0]) if detail is not None else None)


def _frames(path: Path) -> dict[int, np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return {i: f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i % 5 == 0}


def follow_merge(model: Swapper, detail: Swapper | None, r: int, scale: int, ws: Workspace,
                 dst: str, original: Path, merged: Path) -> dict[str, float]:
    """Median per-frame energy ratios inside the face, in crop space at the model's output size."""
    faces = {f.frame_index: f for f in ws.faces.of(dst)}
    orig, mer = _frames(original), _frames(merged)
    size = r * scale
    ratios: dict[str, list[float]] = {"model_vs_original": [], "merged_vs_model": [], "merged_vs_original": []}
    for i in sorted(orig):
        f = faces.get(i)
        if f is None or i not in mer:
            continue
        full = np.asarray(f.transform, np.float64)
        low = cv2.resize(cv2.warpAffine(orig[i], full, (f.size, f.size), flags=cv2.INTER_CUBIC), (r, r),
                         interpolation=cv2.INTER_AREA)
        out, out_hi = run(model, detail, low[None])
        face = out_hi if out_hi is not None else out
        m = masks_for(f.aligned_landmarks()[None] * (size / f.size), size)
        cut = full * (size / f.size)
        a = cv2.warpAffine(orig[i], cut, (size, size), flags=cv2.INTER_CUBIC)
        b = cv2.warpAffine(mer[i], cut, (size, size), flags=cv2.INTER_CUBIC)
        ea, eb, eo = energy(a[None], m)[0], energy(b[None], m)[0], energy(face, m)[0]
        ratios["model_vs_original"].append(eo / ea)
        ratios["merged_vs_model"].append(eb / eo)
        ratios["merged_vs_original"].append(eb / ea)
    return {k: round(float(np.median(v)), 3) for k, v in ratios.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tag")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--merged", type=Path)
    ap.add_argument("--original", type=Path)
    ap.add_argument("--workspace", type=Path)
    a = ap.parse_args()
    mdir = HERE / "cache" / "runs" / a.tag / "m"
    cfg = json.loads((mdir / "config.json").read_text())
    r = int(cfg["resolution"])
    model = TorchSwapper(mdir, torch.device("cpu"))
    net = load_detail(mdir)
    detail = DetailSwapper(model, net) if net is not None else None
    scale = net.config.scale if net is not None else 1
    ws = Workspace.open(HERE / "cache" / "ws-384")
    skip = held_out(mdir)
    src_faces = [f for f in ws.faces.of(a.src) if f.id in skip] or ws.faces.of(a.src)
    dst_faces = ws.faces.of(a.dst)
    rng = np.random.default_rng(0)
    pick = lambda fs: [fs[i] for i in sorted(rng.choice(len(fs), min(a.n, len(fs)), replace=False))]  # noqa: E731
    src_faces, dst_faces = pick(src_faces), pick(dst_faces)
    rows: dict[str, float] = {}
    for who, faces in (("src", src_faces), ("dst", dst_faces)):
        hi_set = load_faceset({who: faces}, r * scale, cfg["face_type"])
        hi, lm_hi = hi_set.images, hi_set.landmarks
        low = np.stack([cv2.resize(h, (r, r), interpolation=cv2.INTER_AREA) for h in hi])
        m_lo, m_hi = masks_for(lm_hi / scale, r), masks_for(lm_hi, r * scale)
        out, out_hi = run(model, detail, low)
        rows[f"{who} true @{r}"] = float(np.median(energy(low, m_lo)))
        rows[f"{who} model @{r}"] = float(np.median(energy(out, m_lo)))
        if scale > 1:
            rows[f"{who} true @{r * scale}"] = float(np.median(energy(hi, m_hi)))
            up = np.stack([cv2.resize(o, (r * scale, r * scale), interpolation=cv2.INTER_CUBIC) for o in out])
            rows[f"{who} model bicubic @{r * scale}"] = float(np.median(energy(up, m_hi)))
            assert out_hi is not None
            rows[f"{who} model+detail @{r * scale}"] = float(np.median(energy(out_hi, m_hi)))
            up_true = np.stack([cv2.resize(o, (r * scale, r * scale), interpolation=cv2.INTER_CUBIC) for o in low])
            rows[f"{who} true{r} bicubic @{r * scale}"] = float(np.median(energy(up_true, m_hi)))
            assert net is not None
            true_hi = _u8(DetailSwapper(IdentitySwapper(r), net).swap(low.astype(np.float32) / 255)[0])
            rows[f"{who} true{r}+detail @{r * scale}"] = float(np.median(energy(true_hi, m_hi)))
    ref = {k: rows[f"src true @{k.rsplit('@', 1)[1]}"] for k in rows}
    table = {k: {"energy": round(v, 1), "vs_src_true": round(v / ref[k], 3)} for k, v in rows.items()}
    doc = {"tag": a.tag, "src": a.src, "dst": a.dst, "n": a.n, "resolution": r, "scale": scale, "rows": table}
    if a.merged is not None:
        doc["merge"] = follow_merge(model, detail, r, scale, Workspace.open(a.workspace or HERE / "cache" / "ws-384"),
                                    a.dst, a.original, a.merged)
        doc["merge"]["merged"] = a.merged.name
        print(doc["merge"])
    out = HERE / "results" / f"softness-{a.tag}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    for k, v in table.items():
        print(f"{k:32s} {v['energy']:9.1f} {v['vs_src_true']:6.3f}")


if __name__ == "__main__":
    main()
