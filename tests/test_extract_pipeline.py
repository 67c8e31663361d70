"""The extraction pipeline on synthetic clips of public-domain portraits (no shared media needed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from conftest import query
from doppel.core.errors import InputError, NoFaceError, RefusedError
from doppel.demo.media import portrait, synth_frames, write_clip
from doppel.extract import backends
from doppel.extract.metrics import lag, smoothing_report
from doppel.extract.pipeline import ExtractConfig, reference_embedding
from doppel.io.image import read_image, write_image
from doppel.ops.align import estimate_transform
from doppel.store import Workspace
from doppel.workflow.extract import extract as extract_clip
from doppel.workflow.workspace import create_workspace


class FakeScreen:
    """Scores every frame the same; records how many frames it saw."""

    def __init__(self, score: float = 0.0) -> None:
        self.value, self.calls = score, 0

    def score(self, image: np.ndarray) -> float:
        assert image.dtype == np.uint8 and image.ndim == 3
        self.calls += 1
        return self.value


@pytest.fixture(scope="module")
def astro(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    clip = synth_frames("astronaut", 40, 320, 240, absent=(24, 30))
    return write_clip(tmp_path_factory.mktemp("clips") / "astro.mp4", clip), clip


@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    clip = synth_frames("astronaut", 48, 320, 240, seed=3)
    return write_clip(tmp_path_factory.mktemp("clips") / "moving.mp4", clip), clip


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two people side by side; Grace Hopper leaves for a while, so the astronaut's track is longest."""
    a = synth_frames("astronaut", 30, 320, 240)
    h = synth_frames("grace_hopper", 30, 320, 240, absent=(10, 22), seed=2)
    frames = [np.concatenate([fa, fh], axis=1) for fa, fh in zip(a.frames, h.frames, strict=True)]
    a.frames = frames
    return write_clip(tmp_path_factory.mktemp("clips") / "pair.mp4", a)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    with create_workspace(tmp_path / "ws") as w:
        yield w


def _snapshot(ws: Workspace) -> tuple[list[tuple], list[str]]:
    rows = []
    for table in ("clips", "identities", "faces", "frames", "tracks", "jobs"):
        rows += [(table, *r) for r in query(ws, f"SELECT * FROM {table}")]
    files = sorted(p.relative_to(ws.root).as_posix() for p in ws.root.rglob("*") if p.name != "doppel.db")
    return rows, files


def test_extracts_every_visible_frame_and_records_the_rest(ws: Workspace, astro: tuple[Path, object]) -> None:
    path, clip = astro
    screen = FakeScreen()
    report = extract_clip(ws, "astro", path, screen=screen)
    assert report.frames == 40 and report.frames_with_face == 34 and report.faces == 34
    assert report.tracks == 2 and report.person_tracks == 2  # the face left and came back: one person
    assert screen.calls == 2  # one sampled frame a second (1.6 s clip)
    status = dict(query(ws, "SELECT frame_index, status FROM frames WHERE identity_id = 1"))
    assert [i for i, s in status.items() if s == "no_face"] == list(range(24, 30))
    recs = ws.faces.of("astro")
    assert [f.frame_index for f in recs] == [i for i in range(40) if not 24 <= i < 30]
    for f in recs[::7]:
        # The stored transform is the one of the smoothed landmarks, and it cut the stored crop.
        assert np.allclose(f.transform, estimate_transform(f.landmarks_smooth, 256, "full"))
        assert read_image(f.aligned_path).shape == (256, 256, 3)
        assert f.blur > 0 and abs(f.yaw) < 30 and abs(f.pitch) < 30
        assert f.bbox[2] > f.bbox[0] and f.landmarks.shape == (68, 2)
    assert sum(f.embedding is not None for f in recs) >= 2  # a few per track, not every frame
    # The face is where the synthetic motion put it.
    still = portrait("astronaut")
    nose = backends.landmarker("dlib-68").landmarks(still, backends.detector("dlib-hog").detect(still)[0].box)[30]
    true_nose = clip.true_points(nose[None])[:, 0]
    found = np.array([f.landmarks[30] for f in recs])
    assert np.median(np.linalg.norm(found - true_nose[[f.frame_index for f in recs]], axis=1)) < 4


def test_smoothing_halves_jitter_without_lag(ws: Workspace, moving: tuple[Path, object]) -> None:
    path, clip = moving
    extract_clip(ws, "m", path, screen=FakeScreen())
    recs = ws.faces.of("m")
    assert len(recs) == 48
    raw = np.stack([f.landmarks for f in recs]).astype(np.float64)
    smooth = np.stack([f.landmarks_smooth for f in recs]).astype(np.float64)
    rep = smoothing_report(np.arange(48), raw, smooth, np.stack([f.transform for f in recs]))
    assert rep["ratio"] <= 0.5, rep
    assert rep["crop_jitter_smooth"] <= 0.5 * rep["crop_jitter_raw"], rep  # the crop sits steadier too
    # Lag against the true head motion (the synthetic transform), not just against raw landmarks.
    first = recs[0]
    portrait_pts = (np.linalg.inv(np.vstack([clip.transforms[0], [0, 0, 1]]))[:2]
                    @ np.c_[first.landmarks, np.ones(68)].T).T
    truth = clip.true_points(portrait_pts)
    assert abs(lag(truth.mean(axis=1), smooth.mean(axis=1))) <= 1.0
    assert abs(lag(truth.mean(axis=1), raw.mean(axis=1))) <= 1.0


def test_rerun_replaces_the_clip_rows_and_files(ws: Workspace, astro: tuple[Path, object]) -> None:
    path, _ = astro
    extract_clip(ws, "astro", path, screen=FakeScreen())
    first = {f.aligned_path for f in ws.faces.of("astro")}
    report = extract_clip(ws, "astro", path, config=ExtractConfig(size=128), screen=FakeScreen())
    recs = ws.faces.of("astro")
    assert len(recs) == report.faces == 34 and {f.size for f in recs} == {128}
    assert not any(p.exists() for p in first)
    assert query(ws, "SELECT COUNT(*) FROM clips").fetchone()[0] == 1
    assert query(ws, "SELECT COUNT(*) FROM frames").fetchone()[0] == 40
    files = list(ws.faceset_dir("astro").rglob("*.*"))
    assert len(files) == 34 and read_image(files[0]).shape == (128, 128, 3)


def test_person_chooses_whom_to_keep(ws: Workspace, pair: Path, tmp_path: Path) -> None:
    longest = extract_clip(ws, "auto", pair, screen=FakeScreen())
    assert longest.frames_with_face == 30 and all(f.bbox[2] <= 330 for f in ws.faces.of("auto"))
    photo = tmp_path / "hopper.png"
    write_image(photo, portrait("grace_hopper"))
    chosen = extract_clip(ws, "hopper", pair, person=photo, screen=FakeScreen())
    recs = ws.faces.of("hopper")
    # She is visible in 18 frames; on her return she is found at the next full-frame scan.
    assert 18 - ExtractConfig().detect_every < chosen.frames_with_face <= 18
    assert all(f.bbox[0] >= 310 for f in recs) and recs[0].frame_index == 0
    assert chosen.similarity is not None and chosen.similarity > 0.9
    assert query(ws, "SELECT COUNT(*) FROM frames WHERE identity_id = 2 AND status = 'no_face'"
                           ).fetchone()[0] == 30 - chosen.frames_with_face


def test_person_not_in_clip_is_a_clear_error(ws: Workspace, astro: tuple[Path, object]) -> None:
    ref = reference_embedding_of("grace_hopper")
    before = _snapshot(ws)
    with pytest.raises(NoFaceError, match="person's face is not in this clip"):
        extract_clip(ws, "x", astro[0], person=ref, screen=FakeScreen())
    assert _snapshot(ws) == before


def reference_embedding_of(name: str) -> np.ndarray:
    image = portrait(name)  # type: ignore[arg-type]
    box = backends.detector("dlib-hog").detect(image)[0].box
    return backends.embedder("dlib-resnet").embed(image, backends.landmarker("dlib-68").landmarks(image, box))


def test_refused_clip_leaves_the_workspace_unchanged(ws: Workspace, astro: tuple[Path, object]) -> None:
    extract_clip(ws, "astro", astro[0], screen=FakeScreen())
    before = _snapshot(ws)
    with pytest.raises(RefusedError, match="explicit"):
        extract_clip(ws, "astro", astro[0], screen=FakeScreen(0.9))
    with pytest.raises(RefusedError):
        extract_clip(ws, "other", astro[0], screen=FakeScreen(0.9))
    assert _snapshot(ws) == before


def test_bad_inputs_change_nothing(ws: Workspace, noface_clip: Path, tmp_path: Path) -> None:
    before = _snapshot(ws)
    with pytest.raises(NoFaceError, match="no face found"):
        extract_clip(ws, "n", noface_clip, screen=FakeScreen())
    with pytest.raises(InputError, match="no such file"):
        extract_clip(ws, "n", tmp_path / "missing.mp4", screen=FakeScreen())
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(InputError, match="notes.mp4"):
        extract_clip(ws, "n", text, screen=FakeScreen())
    with pytest.raises(NoFaceError, match="reference photo"):
        reference_embedding(_write_noise(tmp_path / "noise.png"))
    assert _snapshot(ws) == before


def _write_noise(path: Path) -> Path:
    write_image(path, np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    return path


def test_config_is_checked() -> None:
    from doppel.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--every"):
        ExtractConfig(every=0)
    with pytest.raises(ConfigError, match="--face-type"):
        ExtractConfig(face_type="torso")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="identity name"):
        extract_clip(None, "../evil", "x.mp4")  # type: ignore[arg-type]


def test_every_and_face_type(ws: Workspace, astro: tuple[Path, object]) -> None:
    report = extract_clip(ws, "sparse", astro[0], config=ExtractConfig(every=3, face_type="head"),
                          screen=FakeScreen())
    assert report.frames == 14
    recs = ws.faces.of("sparse")
    assert {f.frame_index % 3 for f in recs} == {0} and {f.face_type for f in recs} == {"head"}
    assert sqlite3.complete_statement("SELECT 1;")


def test_image_sequence_still_image_and_progress(ws: Workspace, tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    clip = synth_frames("grace_hopper", 6, 320, 240)
    for i, frame in enumerate(clip.frames):
        write_image(seq / f"frame_{i}.png", frame)
    calls: list[tuple[int, int | None]] = []
    report = extract_clip(ws, "h", seq, screen=FakeScreen(), progress=lambda d, t: calls.append((d, t)))
    assert report.frames == report.frames_with_face == 6
    assert calls == [(i, 6) for i in range(1, 7)]
    still = tmp_path / "hopper.jpg"
    write_image(still, portrait("grace_hopper"))
    assert extract_clip(ws, "h", still, screen=FakeScreen()).faces == 1
    assert len(ws.faces.of("h")) == 7 and query(ws, "SELECT COUNT(*) FROM clips").fetchone()[0] == 2


def test_damaged_video_changes_nothing(ws: Workspace, astro: tuple[Path, object], tmp_path: Path) -> None:
    data = astro[0].read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: len(data) // 2])
    before = _snapshot(ws)
    with pytest.raises(InputError, match="broken.mp4"):
        extract_clip(ws, "b", broken, screen=FakeScreen())
    assert _snapshot(ws) == before
