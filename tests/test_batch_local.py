"""The batch in this process: the same frames as `doppel merge` on each shot alone (chunked shots too, with
no seam), resuming from finished chunks, skipping finished shots, one shot's failure its own, status
from the workspace, and the `doppel batch` commands."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from batch_helpers import (
    assert_same_as_alone,
    flicker_by_frame,
    merged_alone,
    shift_loader,
    shots_workspace,
    write_jobfile,
)
from doppel.batch.driver import run_batch
from doppel.batch.jobfile import load_jobfile
from doppel.batch.local import LocalExecutor
from doppel.batch.run import current, run, to_retry
from doppel.batch.shots import prepare, shot_key
from doppel.batch.worker import ShotWorker
from doppel.cli.app import app
from doppel.core.errors import InputError
from doppel.core.swap import Swapper
from doppel.io.video import probe
from doppel.provenance.verify import verify_file
from doppel.provenance.watermark import render_payload
from doppel.segment import store as segment_store
from doppel.segment.unet import UNetConfig
from doppel.store.records import ModelRecord
from doppel.workflow.segment import segmenter_dir, segmenter_weights
from test_merge_helpers import ShiftSwapper

LENGTHS = [30, 240, 24]
ABSENT = {1: (70,)}
CUT = {1: 160}
CHUNKS = "[batch]\nchunk_frames = 70\n"  # shot1: 0..69, 70..139 and 140..239 (run-ups: 33 frames each;
# frame 70, where the face is missing, lies inside a short gap that merge bridges, so it is no natural boundary)


@pytest.fixture
def shots(tmp_path: Path) -> tuple:
    ws, clips, marks = shots_workspace(tmp_path, LENGTHS, absent=ABSENT, cut_at=CUT)
    yield ws, clips, marks
    ws.close()


def test_batch_gives_what_merge_gives_on_each_shot_alone(shots: tuple, tmp_path: Path) -> None:
    ws, clips, marks = shots
    job = load_jobfile(write_jobfile(tmp_path / "jobs" / "jobs.toml", clips, extra=CHUNKS))
    alone = merged_alone(ws, job, tmp_path / "alone")
    status = run(ws, job, loader=shift_loader)
    assert status.ok and status.counts() == {"done": 3}
    long = status.shot("shot1")
    assert long.chunks == 3 and long.report is not None and long.report["chunks"] == 3
    assert long.report["shot_cuts"] == [CUT[1]] and long.report["passthrough"] == 1
    assert long.report["inference_run"] == LENGTHS[1] - 1  # every swapped frame inferred once (run-ups reuse)
    for shot in job.shots:
        assert_same_as_alone(shot.output, alone[shot.name])
        st = status.shot(shot.name)
        assert ws.renders.get(st.render or "").status == "done"
        assert len(ws.renders.frames(ws.renders.get(st.render or "").id)) == st.frames
        assert not (ws.renders_dir() / (st.render or "") / "chunks").exists()
    found = verify_file(job.shots[1].output, workspace=ws.root)
    assert found.verdict == "marked" and found.credentials["valid"] and found.credentials["trusted"]
    assert found.watermark["payload"] == render_payload(long.render or "") == found.credentials["watermark_payload"]
    assert found.credentials["render_id"] == long.render
    # no seam: the frames after each boundary flicker no more than the shot's others
    ratios = flicker_by_frame(clips[1], job.shots[1].output, marks[1])
    starts = {t for t in (71, 72, 141, 142) if t in ratios}  # at and after the chunk starts (70: no face)
    elsewhere = [r for t, r in ratios.items() if t not in starts and t != CUT[1]]
    assert starts and max(ratios[t] for t in starts) <= max(elsewhere)


def test_workers_get_the_segmenter_merge_would_use(shots: tuple, tmp_path: Path) -> None:
    """Workers never open the workspace: a shot carries the segmenter's folder and checksum (the base one, then
    the workspace's fine-tuned one), a chunk's key changes with it, and a segmenter swapped after the driver read
    the shot is refused. A shot with no frame set to occlusion=segment carries none."""
    ws, clips, _ = shots
    shot = load_jobfile(write_jobfile(tmp_path / "jobs" / "jobs.toml", clips[:1])).shots[0]
    base = prepare(ws, shot, probe(shot.input), 100)
    assert (base.data.segmenter, base.data.segmenter_sha256) == segmenter_weights(ws)
    assert base.data.segmenter == segment_store.base_dir()
    worker = ShotWorker(loader=shift_loader)
    seg, seconds = worker.segmenter(base.data)
    assert seg is not None and seconds > 0 and worker.segmenter(base.data) == (seg, 0.0)

    segment_store.save(segmenter_dir(ws), segment_store.fresh(UNetConfig(size=64, widths=(8, 8, 16, 16), head=4)),
                       {})
    tuned = prepare(ws, shot, probe(shot.input), 100)
    assert tuned.data.segmenter == segmenter_dir(ws) and tuned.data.segmenter_sha256 != base.data.segmenter_sha256
    assert shot_key(ws, tuned.data, tuned.render) != shot_key(ws, base.data, base.render)
    found, _ = worker.segmenter(tuned.data)
    assert found is not None and found is not seg and found.size == 64
    with pytest.raises(InputError, match="segmenter changed"):
        worker.segmenter(replace(tuned.data, segmenter_sha256="0" * 64))

    off = load_jobfile(write_jobfile(tmp_path / "off" / "jobs.toml", clips[:1], defaults='occlusion = "exclude"'))
    plain = prepare(ws, off.shots[0], probe(shot.input), 100)
    assert plain.data.segmenter is None and worker.segmenter(plain.data) == (None, 0.0)


def test_rerun_skips_finished_shots_and_resumes_from_finished_chunks(shots: tuple, tmp_path: Path) -> None:
    ws, clips, _ = shots
    job = load_jobfile(write_jobfile(tmp_path / "jobs" / "jobs.toml", clips, extra=CHUNKS))
    alone = merged_alone(ws, job, tmp_path / "alone")

    class Stops(ShiftSwapper):
        def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if self.calls >= 30 + 100:  # shot0 whole, shot1's first chunk, part of its second
                raise KeyboardInterrupt
            return super().swap(faces)

    stopper = Stops()
    with pytest.raises(KeyboardInterrupt):
        run_batch(ws, job, LocalExecutor(lambda m: stopper))
    states = {s.name: s.state for s in current(ws, job).shots}
    assert states == {"shot0": "done", "shot1": "interrupted", "shot2": "interrupted"}
    assert to_retry(ws, job) == ["shot1", "shot2"]
    assert ws.renders.get(current(ws, job).shot("shot1").render or "").status == "interrupted"
    calls = ShiftSwapper()
    status = run(ws, job, loader=lambda m: calls)
    assert status.ok and status.shot("shot0").state == "skipped"
    shot1 = status.shot("shot1")
    assert shot1.reused == 70 and shot1.report is not None and shot1.report["resumed"]  # its first chunk
    assert calls.calls < LENGTHS[1] - 70 + LENGTHS[2]  # the rest, less what the cache kept
    for shot in job.shots:
        assert_same_as_alone(shot.output, alone[shot.name])
    again = run(ws, job, loader=lambda m: calls)
    assert {s.state for s in again.shots} == {"skipped"}


def test_a_failing_shot_does_not_stop_the_others(shots: tuple, tmp_path: Path) -> None:
    ws, clips, _ = shots
    path = write_jobfile(tmp_path / "jobs" / "jobs.toml", [clips[0], tmp_path / "missing.mp4", clips[2]])
    job = load_jobfile(path)

    def broken(model: ModelRecord) -> Swapper:
        raise RuntimeError("the model did not load")

    status = run(ws, job, loader=shift_loader)
    assert [s.state for s in status.shots] == ["done", "failed", "done"] and not status.ok
    assert "missing.mp4: no such file" in (status.shot("shot1").error or "")
    assert to_retry(ws, job) == ["shot1"]
    shutil.copy(clips[1], tmp_path / "missing.mp4")  # fixed; but the model now fails to load
    shutil.rmtree(ws.renders_dir() / "cache", ignore_errors=True)
    status = run(ws, job, shots=to_retry(ws, job), loader=broken)
    assert [s.name for s in status.shots] == ["shot1"] and status.shots[0].state == "failed"
    assert "RuntimeError: the model did not load" in (status.shots[0].error or "")


def _tiny_model(ws_root: Path) -> None:
    from doppel.train import checkpoint
    from doppel.train.config import model_config
    from doppel.train.models import build_model

    cfg = model_config(resolution=64, e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=4)
    checkpoint.write_config(ws_root / "models" / "m1", cfg)
    checkpoint.save_weights(ws_root / "models" / "m1", build_model(cfg), {})


def test_cli_run_status_retry(tmp_path: Path) -> None:
    ws, clips, _ = shots_workspace(tmp_path, [12, 10])
    ws.close()
    _tiny_model(tmp_path / "ws")
    jobs = write_jobfile(tmp_path / "jobs" / "jobs.toml", clips, crf=18)
    cli = CliRunner()
    done = cli.invoke(app, ["batch", "run", str(jobs), str(tmp_path / "ws"), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["ok"] and report["runner"] == "in-process" and report["frames"] == 22
    assert [s["state"] for s in report["shots"]] == ["done", "done"]
    assert report["shots"][0]["report"]["swapped"] == 12 and set(report["overheads"]) >= {"join", "credentials"}
    shown = cli.invoke(app, ["batch", "status", str(jobs), str(tmp_path / "ws"), "--json"])
    assert shown.exit_code == 0 and [s["state"] for s in json.loads(shown.stdout)["shots"]] == ["done", "done"]
    table = cli.invoke(app, ["batch", "status", str(jobs), str(tmp_path / "ws")], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "shot0" in table.output and "2 done" in table.output
    nothing = cli.invoke(app, ["batch", "retry", str(jobs), str(tmp_path / "ws")])
    assert nothing.exit_code == 0 and "nothing to retry" in nothing.output
    bad = jobs.with_name("bad.toml")
    bad.write_text('[[shot]]\nname = "x"\ninput = "a.mp4"\noutput = "b.mp4"\nmodel = "m1"\nblend = "soft"\n')
    failed = cli.invoke(app, ["batch", "run", str(bad), str(tmp_path / "ws")])
    assert failed.exit_code == 2 and failed.output.count("\n") == 1 and f"{bad}: shot 'x': bad merge" in failed.output


def test_jobfile_several_models_per_shot(tmp_path: Path) -> None:
    from doppel.batch.jobfile import parse_jobfile
    from doppel.core.errors import ConfigError

    head = '[[shot]]\nname = "s"\ninput = "a.mp4"\noutput = "b.mp4"\n'
    job = parse_jobfile(head + 'model = ["m1", "m2", "m3"]\n', tmp_path / "j.toml")
    assert job.shots[0].model == "m1" and job.shots[0].others == ("m2", "m3")
    assert parse_jobfile(head + 'model = "m1"\n', tmp_path / "j.toml").shots[0].others == ()
    for bad, why in (('model = ["m1", "m1"]', "listed twice"), ("model = []", "list of model names"),
                     ('model = ["m1", "m2"]\nidentity = "x"', "identity works with one model only"),
                     ('model = "m1"\nothers = ["m2"]', "unknown key 'others'")):
        with pytest.raises(ConfigError, match=why):
            parse_jobfile(head + bad + "\n", tmp_path / "j.toml")
