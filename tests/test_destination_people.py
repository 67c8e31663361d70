"""A merge's destination faces are the model's own performer, not whoever the clip shows longest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_clip
from doppel.core.errors import NoFaceError
from doppel.workflow.extract import destination_faces, extract
from doppel.workflow.workspace import create_workspace


def test_destination_faces_follow_the_person(tmp_path: Path) -> None:
    import facefixtures

    ws = create_workspace(tmp_path / "ws")
    alone = [img for img, _ in facefixtures.jittered_frames("astronaut", 6, seed=1)]
    extract(ws, "astro", make_clip(tmp_path / "astro.mp4", alone, audio=False))
    # a two-person shot: hopper on all 20 frames (the longest track), the astronaut walks in at frame 10
    # (where extraction's detector next looks for new faces)
    hop = [img for img, _ in facefixtures.jittered_frames("hopper", 20, seed=2)]
    ast = [img for img, _ in facefixtures.jittered_frames("astronaut", 20, seed=3)]
    h = min(hop[0].shape[0], ast[0].shape[0]) // 2 * 2
    frames = [np.ascontiguousarray(np.concatenate(
        [hop[i][:h], ast[i][:h] if i >= 10 else np.full_like(ast[i][:h], 40)], axis=1)) for i in range(20)]
    both = make_clip(tmp_path / "both.mp4", frames, audio=False)
    dest = destination_faces(ws, both, "astro")
    assert sorted(dest.faces) == list(range(10, 20))
    assert all(f.bbox[0] >= hop[0].shape[1] - 8 for f in dest.faces.values())  # the right-hand person
    # someone who is not in the shot: one line naming them, nothing extracted for them
    only_hopper = make_clip(tmp_path / "hopper.mp4", hop[:6], audio=False)
    with pytest.raises(NoFaceError, match="'astro' is not in this video"):
        destination_faces(ws, only_hopper, "astro")
