"""Figures of face sets, drawn with matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from doppel.faceset.curate import COVER_RADIUS, PITCH_RANGE, YAW_RANGE, poses, uncovered
from doppel.io.atomic import atomic_path
from doppel.store import Workspace


def faceset_coverage_plot(ws: Workspace, identity: str, path: str | Path, *, against: str | None = None) -> Path:
    """:func:`coverage_plot` of ``identity``'s face set in use (and of the ``against`` destination set)."""
    src = ws.faces.of(identity)
    dest = ws.faces.of(against) if against is not None else None
    src_yp = poses(src)
    dest_yp = poses(dest) if dest is not None else None
    miss = uncovered(src_yp, dest_yp) if dest_yp is not None else None
    return coverage_plot(path, src_yp, identity, np.array([f.blur for f in src]), dest=dest_yp, dest_name=against,
                         dest_uncovered=miss)


def coverage_plot(path: str | Path, source: np.ndarray, source_name: str, blur: np.ndarray, *,
                  dest: np.ndarray | None = None, dest_name: str | None = None,
                  dest_uncovered: np.ndarray | None = None) -> Path:
    """Yaw/pitch scatter of a face set (and of a destination set, its uncovered poses marked)
    beside the set's blur histogram; written atomically as PNG. Poses: ``(N, 2)`` degrees."""
    path = Path(path)
    fig = Figure(figsize=(11, 4.8))
    FigureCanvasAgg(fig)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    if dest is not None and len(dest):
        miss = dest_uncovered if dest_uncovered is not None else np.zeros(len(dest), bool)
        ax.scatter(dest[~miss, 0], dest[~miss, 1], s=10, c="#4c72b0", alpha=0.5,
                   label=f"{dest_name} (destination), covered: {int((~miss).sum())}")
        ax.scatter(dest[miss, 0], dest[miss, 1], s=18, c="#d62728", marker="x",
                   label=f"{dest_name}, NOT covered: {int(miss.sum())}")
    ax.scatter(source[:, 0], source[:, 1], s=8, c="#2ca02c", alpha=0.45,
               label=f"{source_name} (source): {len(source)}")
    ax.set_xlim(*YAW_RANGE)
    ax.set_ylim(PITCH_RANGE[1], PITCH_RANGE[0])  # chin-down (positive pitch) at the bottom
    ax.set_xlabel("yaw (degrees, + = face turned to image right)")
    ax.set_ylabel("pitch (degrees, + = looking down)")
    title = "pose coverage" if dest is None else \
        f"pose coverage (covered = a source face within {COVER_RADIUS:g} deg)"
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.legend(loc="upper right", fontsize=8)
    if len(blur):
        bx.hist(blur, bins=min(40, max(5, len(blur) // 5)), color="#2ca02c", alpha=0.8)
    bx.set_xlabel("blur score (variance of Laplacian; higher = sharper)")
    bx.set_ylabel("faces")
    bx.set_title(f"{source_name}: sharpness", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
