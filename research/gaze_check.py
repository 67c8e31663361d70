"""Is a lower gaze correlation the eyes or the iris locator? (issue 12, the detail network's spectrum loss)

``python research/gaze_check.py PAIR TAG...`` merges each cached lab run (``research/cache/runs/TAG``) into the
destination again, keeping the merged clip in ``tmp/gaze-check/``, then reads the irises of the original and
of every merged clip inside the destination's stored (smoothed) eye outlines, with the locator of
``doppel.eval.gaze`` as it is and with the eye region blurred first (sigma in working pixels, ``--blur``):
a locator that reads fine texture as iris moves with the blur, one that reads the iris does not. It also
keeps the original's own readings under each blur, and a blurred copy of the original as a check (a texture
change that keeps the eyes where they are). Writes ``research/results/gaze-check-PAIR.json`` and an
eye-strip sheet per run (``research/sheets/gaze-PAIR-TAG.png``: the original's eyes over the merged clip's,
in the frames where the merged reading differs most; never committed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "research"))
OUT = ROOT / "tmp" / "gaze-check"


def render(pair: str, tag: str, self_swap: bool) -> Path:
    """The run's model merged into the destination, or with ``self_swap`` its held-out self-swap (the source's
    held-out frames re-rendered as the destination), with the recipe's merge settings; cached in ``OUT``."""
    from recipes import recipe as get_recipe

    import quality_lab as lab
    from doppel.store import Workspace
    from doppel.workflow import evaluate
    from doppel.workflow.merge import MergeRequest, merge

    out = OUT / f"{tag}{'-self' if self_swap else ''}.mp4"
    if out.is_file():
        return out
    OUT.mkdir(parents=True, exist_ok=True)
    src, dst = pair.split("-")
    rec = get_recipe(json.loads((lab.RESULTS / f"{tag}.json").read_text())["recipe"])
    part = out.with_suffix(".part.mp4")
    with tempfile.TemporaryDirectory() as tmp:
        ws_dir = Path(tmp) / "ws"
        shutil.copytree(lab.cached_workspace(), ws_dir)
        shutil.rmtree(ws_dir / "models" / "m", ignore_errors=True)
        shutil.copytree(lab.CACHE / "runs" / tag / "m", ws_dir / "models" / "m")
        shutil.copyfile(lab.CACHE / "runs" / tag / "doppel.db", ws_dir / "doppel.db")
        ws = Workspace.open(ws_dir)
        try:
            if self_swap:
                evaluate.self_swap(ws, "m", part, settings=rec.merge_settings(), faces=lab.hold_out(ws, src),
                                   swapper=rec.swapper(ws, "m"))
            else:
                merge(ws, MergeRequest(input=lab.MEDIA / lab.CLIPS[dst], output=part, model="m",
                                       settings=rec.merge_settings()), swapper=rec.swapper(ws, "m"))
        finally:
            ws.close()
    part.rename(out)
    return out


def frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def blurred_eyes(image: np.ndarray, sigma: float, lm: np.ndarray) -> np.ndarray:
    """``image`` with a Gaussian blur of ``sigma`` working pixels (eye width / 48) applied: texture finer than
    that stops counting, an iris (a third of the eye's width) stays."""
    if sigma <= 0:
        return image
    width = float(np.linalg.norm(lm[39] - lm[36]) + np.linalg.norm(lm[45] - lm[42])) / 2
    s = sigma * width / 48
    return cv2.GaussianBlur(image, (0, 0), s)


def main() -> None:
    import quality_lab as lab
    from doppel.eval import gaze
    from doppel.store import Workspace

    ap = argparse.ArgumentParser()
    ap.add_argument("pair")
    ap.add_argument("tags", nargs="+")
    ap.add_argument("--blur", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    ap.add_argument("--self", action="store_true", help="read the held-out self-swaps against the source's truth")
    a = ap.parse_args()
    dst = a.pair.split("-")[0 if a.self else 1]
    ws = Workspace.open(lab.cached_workspace())
    recs = {f.frame_index: f for f in ws.faces.of(dst)}
    ws.close()
    orig = frames(lab.MEDIA / lab.CLIPS[dst])
    idx = sorted(i for i in recs if i < len(orig))
    clips: dict[str, list[np.ndarray]] = {"original": orig}
    clips["original-blur1.5px"] = [cv2.GaussianBlur(f, (0, 0), 1.5) for f in orig]
    for tag in a.tags:
        clips[tag] = frames(render(a.pair, tag, a.self))
    if a.self:  # only the held-out stretch was re-rendered
        lo, hi = int(len(idx) * lab.HOLDOUT[0]), int(len(idx) * lab.HOLDOUT[1])
        idx = idx[lo:hi]
    readings: dict[str, dict[float, np.ndarray]] = {}
    for name, fr in clips.items():
        readings[name] = {}
        for s in a.blur:
            pos = np.array([gaze.iris_positions(blurred_eyes(fr[i], s, recs[i].landmarks_smooth),
                                                recs[i].landmarks_smooth) for i in idx])
            readings[name][s] = gaze.gaze_signal(pos)
    result: dict[str, Any] = {"pair": a.pair, "self_swap": a.self, "frames": len(idx),
                              "blur_sigmas_working_px": a.blur, "rows": []}
    for name in clips:
        row: dict[str, Any] = {"clip": name}
        for s in a.blur:
            corr, err = gaze.gaze_agreement(readings["original"][s], readings[name][s])
            row[f"corr@{s:g}"] = None if corr is None else round(corr, 3)
            row[f"err@{s:g}"] = None if err is None else round(err, 4)
            row[f"std@{s:g}"] = round(float(np.nanstd(readings[name][s])), 4)
        result["rows"].append(row)
        print(row)
    name = f"gaze-check-{a.pair}{'-self' if a.self else ''}.json"
    (ROOT / "research" / "results" / name).write_text(json.dumps(result, indent=1))
    # eye strips: the frames where the unblurred merged reading differs most from the original's
    sheets = ROOT / "research" / "sheets"
    sheets.mkdir(parents=True, exist_ok=True)
    for tag in a.tags:
        d = np.abs(readings[tag][0.0] - readings["original"][0.0])
        order = [int(j) for j in np.argsort(np.nan_to_num(d, nan=-1))[::-1][:8]]
        tiles = []
        for j in order:
            i, lm = idx[j], recs[idx[j]].landmarks_smooth
            x0, x1 = int(lm[36:48, 0].min()) - 12, int(lm[36:48, 0].max()) + 12
            yc = int(lm[36:48, 1].mean())
            h = (x1 - x0) // 4
            pair_tile = [cv2.resize(c[i][max(0, yc - h):yc + h, max(0, x0):x1], (480, 240),
                                    interpolation=cv2.INTER_NEAREST) for c in (orig, clips[tag])]
            tiles.append(np.vstack([*pair_tile, np.zeros((4, 480, 3), np.uint8)]))
        sheet = np.vstack(tiles)
        cv2.imwrite(str(sheets / f"gaze-{tag}{'-self' if a.self else ''}.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
