"""End-to-end merge with a test-double swapper on synthetic clips: output checks, resume, layers,
overrides, re-rendering for review."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import query, raw_db, shared_clip
from doppel.core.errors import NoFaceError, RefusedError
from doppel.io.video import probe, read_frames
from doppel.io.writer import VideoWriter
from doppel.merge.settings import MergeSettings
from doppel.merge.stages import Compositor, RunContext, StageTimer, WorkItem
from doppel.provenance.credentials import read_credentials
from doppel.provenance.watermark import Watermarker, detect, render_payload
from doppel.store import Workspace
from doppel.workflow.merge import MergeRequest, add_override, merge, rerender
from doppel.workflow.replay import render_frames
from doppel.workflow.workspace import create_workspace
from test_merge_helpers import ShiftSwapper, face_clip, mean_shape, setup_workspace

N = 24
ABSENT = (5, 6, 7)


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[tuple[Workspace, Path, dict[int, np.ndarray]]]:
    clip, marks = face_clip(tmp_path / "in.mp4", N, absent=ABSENT)
    ws = setup_workspace(tmp_path / "ws", clip, marks, frame_count=N)
    yield ws, clip, marks
    ws.close()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def _assert_only_watermarked(before: np.ndarray, after: np.ndarray, mark: Watermarker) -> None:
    """``after`` is ``before`` plus the watermark, up to H.264 loss (tests encode at a low CRF): accounting
    for the watermark leaves only encoding error (>= 40 dB), and the watermark itself is faint."""
    assert _psnr(mark.embed(before), after) >= 40
    assert _psnr(before, after) >= 34


def _face(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    (x0, y0), (x1, y1) = landmarks.min(0).astype(int) + 4, landmarks.max(0).astype(int) - 4
    return image[y0:y1, x0:x1]


def _packets(path: Path, kind: str) -> list[tuple[int | None, int]]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return sorted((p.pts, p.size) for p in c.demux(stream) if p.size)


def test_output_keeps_frames_timing_resolution_audio(scene: tuple, tmp_path: Path) -> None:
    ws, clip, marks = scene
    out = tmp_path / "out.mp4"
    report = merge(ws, MergeRequest(input=clip, output=out, model="m1", crf=6), swapper=ShiftSwapper())
    src, dst = probe(clip), probe(out)
    assert (dst.frame_count, dst.width, dst.height) == (src.frame_count, src.width, src.height)
    assert [f.time for f in read_frames(out)] == pytest.approx([f.time for f in read_frames(clip)], abs=1e-4)
    assert dst.has_audio and dst.audio_codec == src.audio_codec
    assert _packets(out, "audio") == _packets(clip, "audio")  # copied unchanged
    assert (report.frames, report.swapped, report.passthrough) == (N, N - len(ABSENT), len(ABSENT))
    assert report.flicker_ratio is not None and report.flicker_ratio < 1.5
    assert set(report.stages) >= {"decode", "infer", "composite", "watermark", "encode"}
    rows = ws.renders.frames(report.render_id)
    assert [r.status for r in rows] == ["passthrough" if i in ABSENT else "swapped" for i in range(N)]
    assert ws.renders.get(report.render_id).status == "done"
    creds = read_credentials(out)
    assert creds.present and creds.valid and creds.render_id == report.render_uid
    assert creds.consent_hashes == [report.provenance["consent_hash"]]
    assert Path(report.provenance["credentials_sidecar"]) == out.with_suffix(".c2pa")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "out"))) == ["out.c2pa", "out.mp4"]
    # the face changed; frames without the person differ only by the watermark and re-encoding
    a, b = list(read_frames(clip)), list(read_frames(out))
    assert _psnr(_face(a[10].image, marks[10]), _face(b[10].image, marks[10])) < 32
    mark = Watermarker(render_payload(report.render_uid))
    for i in ABSENT:
        _assert_only_watermarked(a[i].image, b[i].image, mark)


@pytest.mark.media
def test_every_frame_carries_the_render_watermark(tmp_path: Path) -> None:
    """On real footage (the watermark needs natural images), with synthetic face rows on 20 of 40 frames."""
    src = shared_clip("lp_d18_man_neutral_studio.mp4")
    clip = tmp_path / "in.mp4"
    with VideoWriter(clip, width=480, height=480, fps=30, audio_from=src) as w:
        for f in read_frames(src, stop=40):
            w.write(f.image)
    marks = {i: mean_shape() * 200 + [140, 120] for i in range(0, 40, 2)}
    with setup_workspace(tmp_path / "ws", clip, marks, frame_count=40) as ws:
        report = merge(ws, MergeRequest(input=clip, output=tmp_path / "o.mp4", model="m1"), swapper=ShiftSwapper())
    frames = [f.image for f in read_frames(tmp_path / "o.mp4")]
    found = detect(frames)
    assert found.detected and found.payload == render_payload(report.render_uid)
    assert detect(frames[1::2]).payload == found.payload  # the frames without the person are marked too


def test_passthrough_is_bit_identical_without_the_watermark(scene: tuple) -> None:
    """The compositing step itself changes nothing in a frame without the person: only the watermark does."""
    _, clip, _ = scene

    class NoMark:
        def watermark(self, rgb: np.ndarray) -> np.ndarray:
            return rgb

    ctx = RunContext(swapper=ShiftSwapper(), model=None, dest=None, frame_settings=None, cache=None,  # type: ignore[arg-type]
                   provenance=NoMark(), layers=None, batch=1, stages=StageTimer(), stop=None)  # type: ignore[arg-type]
    comp = Compositor(ctx)
    for frame in read_frames(clip, stop=3):
        item = WorkItem(frame, MergeSettings())
        comp.process(item)
        assert item.output is not None and np.array_equal(item.output, frame.image)


def test_resume_reuses_finished_frames(scene: tuple, tmp_path: Path) -> None:
    ws, clip, _ = scene
    out = tmp_path / "out.mp4"

    class Interrupting(ShiftSwapper):
        def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if self.calls >= 8:
                raise KeyboardInterrupt
            return super().swap(faces)

    first = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        merge(ws, MergeRequest(input=clip, output=out, model="m1", batch=4), swapper=first)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))
    assert ws.renders.all()[0].status == "interrupted"
    second = ShiftSwapper()
    report = merge(ws, MergeRequest(input=clip, output=out, model="m1", batch=4), swapper=second)
    assert report.resumed and report.inference_reused == first.calls >= 8  # every face swapped before the stop
    assert second.calls == N - len(ABSENT) - first.calls
    third = ShiftSwapper()
    again = merge(ws, MergeRequest(input=clip, output=out, model="m1"), swapper=third)
    assert third.calls == 0 and again.render_uid == report.render_uid
    other = merge(ws, MergeRequest(input=clip, output=out, model="m1", settings=MergeSettings(colour="lct")),
                  swapper=ShiftSwapper())
    assert other.render_uid != report.render_uid and not other.resumed and other.inference_reused == N - 3


def test_layers_are_16_bit_rgba_with_transform(scene: tuple, tmp_path: Path) -> None:
    ws, clip, _ = scene
    layers = tmp_path / "layers"
    merge(ws, MergeRequest(input=clip, output=tmp_path / "o.mp4", model="m1", layers=layers), swapper=ShiftSwapper())
    faces = sorted(layers.glob("face_*.png"))
    assert len(faces) == N - len(ABSENT) and not (layers / "face_000005.png").exists()
    rgba = cv2.imread(str(faces[0]), cv2.IMREAD_UNCHANGED)
    matte = cv2.imread(str(layers / "matte_000000.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.dtype == np.uint16 and rgba.shape == (64, 64, 4)
    np.testing.assert_array_equal(rgba[..., 3], matte)
    info = json.loads((layers / "transform_000000.json").read_text())
    fwd, inv = np.array(info["frame_to_crop"]), np.array(info["crop_to_frame"])
    assert np.allclose((fwd @ np.append(inv @ [10, 20, 1], 1)), [10, 20])
    assert (info["frame_width"], info["frame_height"], info["crop_size"]) == (160, 120, 64)


def test_overrides_keep_original_frames(scene: tuple, tmp_path: Path) -> None:
    ws, clip, marks = scene
    out = tmp_path / "out.mp4"
    report = merge(ws, MergeRequest(input=clip, output=out, model="m1", crf=6,
                                    overrides=((10, 12, {"keep_original": True}),)), swapper=ShiftSwapper())
    assert report.kept == 3
    a, b = list(read_frames(clip)), list(read_frames(out))
    mark = Watermarker(render_payload(report.render_uid))
    for i in (10, 11, 12):
        _assert_only_watermarked(a[i].image, b[i].image, mark)
    # swapped again after the kept run: a swapped face is 30-33 dB from the original here (the colour transfer
    # matches ShiftSwapper's swapped channels back), a kept one, only watermarked, 38-39 dB
    assert _psnr(_face(a[13].image, marks[13]), _face(b[13].image, marks[13])) < 34


def test_render_frames_for_review_matches_full_run_and_follows_edits(scene: tuple, tmp_path: Path) -> None:
    ws, clip, _ = scene
    out = tmp_path / "out.mp4"
    report = merge(ws, MergeRequest(input=clip, output=out, model="m1"), swapper=ShiftSwapper())
    full = {f.index: f.image for f in read_frames(out)}
    swapper = ShiftSwapper()
    again = render_frames(ws, report.render_id, [12, 20], swapper=swapper)
    assert swapper.calls == 0  # cached inference
    for i in (12, 20):
        assert again[i].status == "swapped" and _psnr(again[i].image, full[i]) > 35
    add_override(ws, report.render_id, 20, 20, {"keep_original": True})
    edited = render_frames(ws, report.render_id, [20], swapper=swapper)
    assert edited[20].status == "kept"
    assert [r.status for r in ws.renders.frames(report.render_id) if r.frame_index == 20] == ["kept"]
    redo = rerender(ws, report.render_id, swapper=swapper)
    assert redo.render_uid == report.render_uid and redo.kept == 1


def test_no_destination_person_and_no_consent(tmp_path: Path) -> None:
    clip, _ = face_clip(tmp_path / "in.mp4", 6, absent=tuple(range(6)))
    with setup_workspace(tmp_path / "ws", clip, {}, frame_count=6) as ws, pytest.raises(NoFaceError, match="bob"):
        merge(ws, MergeRequest(input=clip, output=tmp_path / "o.mp4", model="m1"), swapper=ShiftSwapper())
    assert not (tmp_path / "o.mp4").exists()
    clip2, marks = face_clip(tmp_path / "in2.mp4", 6)
    with setup_workspace(tmp_path / "ws2", clip2, marks, frame_count=6, consent=False) as ws, \
            pytest.raises(RefusedError, match="consent"):
        merge(ws, MergeRequest(input=clip2, output=tmp_path / "o.mp4", model="m1"), swapper=ShiftSwapper())
    assert not (tmp_path / "o.mp4").exists()


def test_variable_frame_rate_timing_and_shot_cuts(tmp_path: Path) -> None:
    pts = [0, 40, 80, 200, 240, 400, 440, 480, 520, 560, 600, 640]  # ms, irregular
    clip, marks = face_clip(tmp_path / "vfr.mkv", len(pts), audio=False, cut_at=7, pts=pts,
                            time_base=Fraction(1, 1000))
    out = tmp_path / "out.mp4"
    with setup_workspace(tmp_path / "ws", clip, marks, frame_count=len(pts)) as ws:
        report = merge(ws, MergeRequest(input=clip, output=out, model="m1"), swapper=ShiftSwapper())
        rows = ws.renders.frames(report.render_id)
    assert [f.time for f in read_frames(out)] == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    assert not probe(out).has_audio
    assert report.shot_cuts == [7] and [r.frame_index for r in rows if r.shot_cut] == [7]


@pytest.mark.media
def test_input_not_in_the_workspace_is_extracted_on_the_fly(tmp_path: Path) -> None:
    from doppel.core.clock import now
    from doppel.provenance.consent import add_consent

    src = shared_clip("lp_d18_man_neutral_studio.mp4")
    clip = tmp_path / "in.mp4"
    with VideoWriter(clip, width=480, height=480, fps=30, audio_from=src) as w:
        for f in read_frames(src, stop=45):
            w.write(f.image)
    with create_workspace(tmp_path / "ws") as ws:
        add_consent(ws, "alice", "Alice Example", "tests", "public-domain-demo")
        ws.identities.ensure("bob")
        (ws.models_dir() / "m1").mkdir()
        with raw_db(ws) as c:
            c.execute("INSERT INTO models (name, path, arch, resolution, face_type, src_identity_id, dst_identity_id,"
                      " created_at, updated_at) VALUES ('m1', 'models/m1', 'test', 64, 'full', ?, ?, ?, ?)",
                      (ws.identities.id_of("alice"), ws.identities.id_of("bob"), now(), now()))
        report = merge(ws, MergeRequest(input=clip, output=tmp_path / "o.mp4", model="m1"), swapper=ShiftSwapper())
        assert query(ws, "SELECT COUNT(*) FROM faces").fetchone()[0] >= 40
    assert report.frames == 45 and report.swapped >= 40
