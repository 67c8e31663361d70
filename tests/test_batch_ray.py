"""The batch on a real Ray cluster started here on loopback (a head node and a worker node, one CPU each):
the same frames, timing and audio as `doppel merge` on each shot alone, with the watermark and trusted
credentials; a worker killed in the middle of a shot changes nothing in the result; a shot cut in chunks
on both nodes shows no seam. Slow: starting the cluster alone takes 15-30 s on two shared cores."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_helpers import (
    assert_same_as_alone,
    flicker_by_frame,
    merged_alone,
    shift_loader,
    shots_workspace,
    slow_loader,
    write_jobfile,
)
from doppel.batch.driver import run_batch
from doppel.batch.jobfile import load_jobfile
from doppel.batch.status import BatchStatus
from doppel.extract.config import content_hash
from doppel.provenance.verify import verify_file
from doppel.provenance.watermark import render_payload

pytestmark = [pytest.mark.slow,  # (not importorskip: importing ray before the cluster sets it up would not do)
              pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs doppel's cluster extra")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from ray_cluster import ray_cluster

    with ray_cluster(workers=1, cpus=1) as address:
        yield address


def _executor(address: str, loader: object) -> object:
    from doppel.batch.ray_runner import RayExecutor

    return RayExecutor(address, loader=loader)  # type: ignore[arg-type]


def test_batch_on_ray_gives_what_merge_gives_alone_with_no_seam_between_chunks(cluster: str, tmp_path: Path) -> None:
    ws, clips, marks = shots_workspace(tmp_path, [30, 240, 24], absent={1: (70,)}, cut_at={1: 160})
    job = load_jobfile(write_jobfile(tmp_path / "jobs" / "jobs.toml", clips, extra="[batch]\nchunk_frames = 70\n"))
    alone = merged_alone(ws, job, tmp_path / "alone")
    ex = _executor(cluster, shift_loader)
    try:
        assert ex.workers == 2  # type: ignore[attr-defined]
        status = run_batch(ws, job, ex)  # type: ignore[arg-type]
    finally:
        ex.close()  # type: ignore[attr-defined]
    assert status.ok and status.runner == f"ray {cluster}"
    long = status.shot("shot1")
    assert long.report is not None and long.report["chunks"] == 3 and long.report["shot_cuts"] == [160]
    assert len(long.report["workers"]) == 2  # both nodes merged chunks of it
    for shot in job.shots:
        assert_same_as_alone(shot.output, alone[shot.name])
        found = verify_file(shot.output, workspace=ws.root)
        st = status.shot(shot.name)
        assert found.verdict == "marked" and found.credentials["valid"] and found.credentials["trusted"]
        assert found.watermark["payload"] == render_payload(st.render or "")
        assert found.credentials["render_id"] == st.render
    # no seam where the chunks meet
    ratios = flicker_by_frame(clips[1], job.shots[1].output, marks[1])
    starts = {t for t in (71, 72, 141, 142) if t in ratios}
    assert starts and max(ratios[t] for t in starts) <= max(r for t, r in ratios.items() if t not in starts)
    ws.close()


def test_a_worker_killed_in_the_middle_of_a_shot_changes_nothing(cluster: str, tmp_path: Path) -> None:
    ws, clips, _ = shots_workspace(tmp_path, [240, 40], absent={0: (70,)})
    job = load_jobfile(write_jobfile(tmp_path / "jobs" / "jobs.toml", clips, extra="[batch]\nchunk_frames = 70\n"))
    alone = merged_alone(ws, job, tmp_path / "alone")
    ex = _executor(cluster, slow_loader)
    first = set(ex.names())  # type: ignore[attr-defined]
    killed: list[str] = []

    def kill_one(status: BatchStatus) -> None:
        shot = status.shot("shot0")
        if not killed and shot.running_on and shot.done >= 20:  # chunks under way, frames written
            _, worker = sorted(shot.running_on.items())[-1]
            killed.append(worker)
            os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)

    try:
        status = run_batch(ws, job, ex, progress=kill_one)  # type: ignore[arg-type]
    finally:
        ex.close()  # type: ignore[attr-defined]
    assert killed and status.ok
    shot = status.shot("shot0")
    assert shot.report is not None and shot.chunks_done == shot.chunks == 3 and shot.done == shot.frames == 240
    assert set(shot.report["workers"]) - first  # a restarted worker took the killed one's chunk over
    rows = ws.renders.frames(ws.renders.get(shot.render or "").id)
    assert [r.frame_index for r in rows] == list(range(240))
    for s in job.shots:
        assert_same_as_alone(s.output, alone[s.name])
    assert sorted(p.name for p in (tmp_path / "jobs" / "out").iterdir()) == \
        ["shot0.c2pa", "shot0.mp4", "shot1.c2pa", "shot1.mp4"]
    ws.close()


def test_a_new_shot_is_extracted_by_the_driver_and_evaluated_on_a_worker(cluster: str, tmp_path: Path) -> None:
    """Real faces (the demo's public-domain portraits): the batch extracts the destination of a clip the workspace
    has not seen, merges it on the cluster and evaluates the result on a worker (dlib loaded there)."""
    from doppel.demo.media import Motion, synth_frames, write_clip
    from doppel.provenance.consent import add_consent
    from doppel.workflow.extract import extract
    from doppel.workflow.workspace import create_workspace

    motion = Motion(period=24)
    src = write_clip(tmp_path / "hopper.mp4", synth_frames("grace_hopper", 24, 320, 240, motion=motion, seed=3))
    plate = write_clip(tmp_path / "plate.mp4", synth_frames("astronaut", 24, 320, 240, motion=motion, seed=4))
    ws = create_workspace(tmp_path / "ws")
    add_consent(ws, "hopper", "Grace Hopper", "tests", "public-domain-demo")
    extract(ws, "hopper", src)
    ws.identities.ensure("astronaut")
    (ws.models_dir() / "m1").mkdir()
    ws.models.register("m1", folder_rel="models/m1", arch="test", preset="cpu", resolution=64, face_type="full",
                       src="hopper", dst="astronaut", base=None, step=1)
    job = load_jobfile(write_jobfile(tmp_path / "jobs" / "jobs.toml", [plate], defaults="eval = true", crf=18))
    ex = _executor(cluster, shift_loader)
    try:
        status = run_batch(ws, job, ex)  # type: ignore[arg-type]
    finally:
        ex.close()  # type: ignore[attr-defined]
    shot = status.shot("shot0")
    assert status.ok, shot.error
    assert shot.eval is not None and Path(shot.eval["report"]).is_file() and Path(shot.eval["sheet"]).is_file()
    report = json.loads(Path(shot.eval["report"]).read_text())
    assert report["render"] == shot.render and report["frames_compared"] > 12 and report["src"] == "hopper"
    assert ws.faces.extracted(ws.clips.by_hash(content_hash(plate)).id, "astronaut")  # type: ignore[union-attr]
    ws.close()
