"""Face-set statistics, pose coverage and reversible pruning, on synthetic extractions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import raw_db
from doppel.cli.app import app
from doppel.core.errors import ConfigError, WorkspaceError
from doppel.demo.media import Motion, synth_frames, write_clip
from doppel.extract.config import ExtractConfig
from doppel.faceset import curate
from doppel.store import Workspace
from doppel.workflow.extract import extract as extract_clip
from doppel.workflow.workspace import create_workspace

runner = CliRunner()


class _Clean:
    def score(self, image: np.ndarray) -> float:
        return 0.0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with 'astro' (20 moving frames, 6 still ones), 'hopper' (8) and 'mixed' (both, sparser)."""
    root = tmp_path_factory.mktemp("curate")
    moving = write_clip(root / "a.mp4", synth_frames("astronaut", 20, 320, 240), audio=False)
    still = write_clip(root / "s.mp4", synth_frames("astronaut", 6, 320, 240, motion=Motion(0, 0, 0, 0)),
                       audio=False)
    hopper = write_clip(root / "h.mp4", synth_frames("grace_hopper", 8, 320, 240), audio=False)
    with create_workspace(root / "ws") as ws:
        for identity, clips in (("astro", [moving, still]), ("hopper", [hopper]), ("mixed", [moving, hopper])):
            for clip in clips:  # 'mixed': every 2nd frame (10 + 4 faces), to keep embedding them cheap
                every = 2 if identity == "mixed" else 1
                extract_clip(ws, identity, clip, config=ExtractConfig(every=every), screen=_Clean())
    return root / "ws"


@pytest.fixture
def ws(built: Path, tmp_path: Path) -> Workspace:
    import shutil

    shutil.copytree(built, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as w:
        yield w


def test_stats_counts_blur_and_pose(ws: Workspace) -> None:
    s = curate.stats(ws, "astro")
    assert s["faces"] == s["included"] == 26 and s["excluded"] == 0 and s["clips"] == 2
    assert 0 < s["blur"]["min"] <= s["blur"]["median"] <= s["blur"]["max"]
    assert -30 < s["yaw"]["median"] < 30 and s["pose_cells"] >= 1
    with pytest.raises(WorkspaceError, match="no identity 'nobody'"):
        curate.stats(ws, "nobody")


def test_against_finds_the_poses_the_source_lacks(ws: Workspace) -> None:
    # Give the destination known poses: half inside the source's pose range, half far out of it.
    src = curate.poses(ws.faces.of("astro"))
    centre = src.mean(0)
    dest_ids = [f.id for f in ws.faces.of("hopper")]
    far = [(centre[0] + 45 + i, centre[1] - 25) for i in range(4)]
    near = [(centre[0] + 1, centre[1]) for _ in range(4)]
    with raw_db(ws) as c:
        c.executemany("UPDATE faces SET yaw = ?, pitch = ? WHERE id = ?",
                      [(y, p, i) for (y, p), i in zip(near + far, dest_ids, strict=True)])
    s = curate.stats(ws, "astro", against="hopper")["against"]
    assert s["faces"] == 8 and s["uncovered"] == 4 and s["uncovered_fraction"] == 0.5
    assert sum(cell["faces"] for cell in s["uncovered_cells"]) == 4
    assert curate.uncovered(np.zeros((0, 2)), np.ones((3, 2))).all()


def test_prune_blur_is_exact_and_reversible(ws: Workspace) -> None:
    ids = [f.id for f in ws.faces.of("astro")]
    with raw_db(ws) as c:
        c.executemany("UPDATE faces SET blur = ? WHERE id = ?", [(float(i), fid) for i, fid in enumerate(ids)])
    dry = curate.prune(ws, "astro", curate.PruneCriteria(blur_below=10), dry_run=True)
    assert dry["pruned"] == 10 and len(ws.faces.of("astro")) == 26
    done = curate.prune(ws, "astro", curate.PruneCriteria(blur_below=10))
    assert done["by_reason"]["blur"] == 10 and len(ws.faces.of("astro")) == 16
    kept = ws.faces.of("astro", include_excluded=True)
    assert {f.exclude_reason for f in kept if f.excluded} == {"blur"}
    assert all(f.aligned_path.exists() for f in kept)  # nothing deleted
    assert curate.unprune(ws, "astro")["restored"] == 10 and len(ws.faces.of("astro")) == 26


def test_prune_duplicates_keeps_one_of_a_still_shot(ws: Workspace) -> None:
    still_clip = max(f.clip_id for f in ws.faces.of("astro"))  # added second: six identical frames
    report = curate.prune(ws, "astro", curate.PruneCriteria(duplicates=0.02))
    left = ws.faces.of("astro")
    # The still shot repeats the moving clip's first pose: at most one of its faces is new.
    assert sum(f.clip_id == still_clip for f in left) <= 1
    assert sum(f.clip_id != still_clip for f in left) >= 3  # the moving clip keeps its distinct poses
    assert report["by_reason"]["duplicate"] >= 5 and report["remaining"] == len(left)


def test_prune_outliers_removes_the_other_person(ws: Workspace) -> None:
    report = curate.prune(ws, "mixed", curate.PruneCriteria(outliers=0.45))
    assert report["by_reason"]["outlier"] == 4
    left = ws.faces.of("mixed")
    assert len(left) == 10 and len({f.clip_id for f in left}) == 1
    assert all(f.embedding is not None for f in ws.faces.of("mixed", include_excluded=True))  # stored for next time


def test_prune_needs_a_criterion() -> None:
    with pytest.raises(ConfigError, match="nothing to prune"):
        curate.PruneCriteria()
    with pytest.raises(ConfigError, match="--duplicates"):
        curate.PruneCriteria(duplicates=3)


def test_cli_stats_plot_prune_unprune(ws: Workspace, tmp_path: Path) -> None:
    root = str(ws.root)
    plot = tmp_path / "cov.png"
    r = runner.invoke(app, ["faceset", "stats", root, "astro", "--against", "hopper", "--plot", str(plot), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["included"] == 26 and data["against"]["faces"] == 8 and data["plot"] == str(plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    r = runner.invoke(app, ["faceset", "stats", root, "astro"])
    assert r.exit_code == 0 and "26 faces in use" in r.stderr
    r = runner.invoke(app, ["faceset", "prune", root, "astro", "--duplicates", "0.02", "--dry-run", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["dry_run"] is True and len(ws.faces.of("astro")) == 26
    r = runner.invoke(app, ["faceset", "prune", root, "astro", "--duplicates", "0.02"])
    assert r.exit_code == 0 and "excluded" in r.stderr
    r = runner.invoke(app, ["faceset", "unprune", root, "astro", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["restored"] >= 5
    r = runner.invoke(app, ["faceset", "prune", root, "astro"])
    assert r.exit_code != 0 and "nothing to prune" in r.stderr
    r = runner.invoke(app, ["faceset", "stats", root, "nobody"])
    assert r.exit_code != 0 and "no identity 'nobody'" in r.stderr
