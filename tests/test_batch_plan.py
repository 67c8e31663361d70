"""The batch job file (validation, defaults, one-line errors) and the chunk plan (every frame once, in order;
boundaries where the compositor forgets its past, else a run-up long enough for the smoothers)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from doppel.batch.jobfile import load_jobfile, parse_jobfile
from doppel.batch.plan import MIN_CHUNK, chunk_size, plan_shot
from doppel.batch.status import BatchStatus, ShotStatus, table_rows
from doppel.core.errors import ConfigError
from doppel.merge.chunk import FrameRange
from doppel.merge.composite import TemporalState
from doppel.merge.settings import FrameSettings, MergeSettings, Override

JOB = """
[batch]
chunk_frames = 500

[defaults]
model = "m1"
crf = 20
colour = "lct"

[[shot]]
name = "sh010"
input = "plates/sh010.mp4"
output = "out/sh010.mp4"

[[shot]]
name = "sh020"
input = "/abs/sh020.mp4"
output = "out/sh020.mov"
model = "m2"
identity = "carol"
colour = "mkl"
blend = "poisson"
overrides = ["10-12:keep_original=true"]
eval = true
"""


def _parse(text: str) -> object:
    return parse_jobfile(text, Path("/jobs/jobs.toml"))


def test_jobfile_applies_defaults_and_resolves_paths() -> None:
    job = parse_jobfile(JOB, Path("/jobs/jobs.toml"))
    a, b = job.shots
    assert job.options.chunk_frames == 500
    assert (a.name, a.model, a.crf, a.settings.colour, a.eval) == ("sh010", "m1", 20, "lct", False)
    assert a.input == Path("/jobs/plates/sh010.mp4") and a.output == Path("/jobs/out/sh010.mp4")
    assert (b.model, b.identity, b.settings.colour, b.settings.blend, b.eval) == ("m2", "carol", "mkl", "poisson", True)
    assert b.input == Path("/abs/sh020.mp4") and b.overrides == ((10, 12, {"keep_original": True}),)
    assert job.shot("sh020") is b


SHOT = '[[shot]]\nname = "a"\ninput = "i.mp4"\noutput = "o.mp4"\nmodel = "m"\n'


@pytest.mark.parametrize(("text", "expected"), [
    (SHOT + 'colr = "lct"', "shot 'a': unknown key 'colr'"),
    ('[[shot]]\nname = "a"\ninput = "i.mp4"\nmodel = "m"', "shot 'a': missing 'output'"),
    ('[[shot]]\nname = "a"\ninput = "i.mp4"\noutput = "o.mp4"\nmodel = "m"\ncolour = "sepia"', "shot 'a': bad merge"),
    (SHOT + "crf = 99", "shot 'a': bad Shot setting: crf=99"),
    ('[[shot]]\nname = "a b"\ninput = "i.mp4"\noutput = "o.mp4"\nmodel = "m"', "name must be"),
    ('[[shot]]\nname = "a"\ninput = "i.mp4"\noutput = "o.mkv"\nmodel = "m"', "output must be one of .mp4"),
    ('[[shot]]\nname = "a"\ninput = "i.mp4"\noutput = "o.mp4"\nmodel = "m"\noverrides = ["x:keep_original=1"]',
     "frame range 'x'"),
    ('[[shot]]\nname = "a"\ninput = "i.mp4"\noutput = "o.mp4"\nmodel = "m"\n'
     '[[shot]]\nname = "a"\ninput = "j.mp4"\noutput = "p.mp4"\nmodel = "m"', "listed twice"),
    ('[[shot]]\nname = "a"\ninput = "i.mp4"\noutput = "o.mp4"\nmodel = "m"\n'
     '[[shot]]\nname = "b"\ninput = "j.mp4"\noutput = "o.mp4"\nmodel = "m"', "write the same output"),
    ('[defaults]\nmodel = "m"', "no shots"),
    ('[shots]\nx = 1', "unknown table(s) shots"),
    ('[batch]\nchunk_frames = -1\n[[shot]]\nname = "a"\ninput = "i.mp4"\noutput = "o.mp4"\nmodel = "m"', "[batch]"),
    ('[[shot]\nname = "a"', "not valid TOML"),
])
def test_jobfile_errors_are_one_line_naming_the_file(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        _parse(text)
    message = err.value.message
    assert message.startswith("/jobs/jobs.toml: ") and expected in message and "\n" not in message


def test_missing_jobfile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such job file"):
        load_jobfile(tmp_path / "nope.toml")


def test_run_up_length_follows_the_smoothing_weights() -> None:
    assert TemporalState.memory(MergeSettings()) == 33  # 0.7 ** 33 < 1e-5
    assert TemporalState.memory(MergeSettings(smoothing=False)) == 0
    assert TemporalState.memory(MergeSettings(colour_smoothing=0, face_smoothing=0, mask_smoothing=0)) == 0
    assert TemporalState.memory(MergeSettings(mask_smoothing=0.9)) == 110


def _covers(chunks: list[FrameRange], n: int) -> None:
    assert chunks[0].start == 0 and chunks[-1].stop == n and chunks[0].warmup == 0
    for a, b in itertools.pairwise(chunks):
        assert a.stop == b.start and b.warmup >= 1


def test_plan_cuts_after_a_frame_without_the_person_with_a_one_frame_run_up() -> None:
    faces = set(range(1000)) - {390}
    chunks = plan_shot(1000, faces, FrameSettings(MergeSettings()), 200)
    _covers(chunks, 1000)
    assert FrameRange(391, chunks[2].stop, 1) == chunks[2]  # nominal 400, the frame without a face is at 390
    assert [c.warmup for c in chunks] == [0, 33, 1, 33, 33]


def test_plan_uses_kept_frames_and_unsmoothed_frames_as_boundaries() -> None:
    kept = FrameSettings(MergeSettings(), [Override(1, 205, 205, {"keep_original": True})])
    assert plan_shot(1000, set(range(1000)), kept, 200)[1] == FrameRange(206, 406, 1)
    plain = plan_shot(1000, set(range(1000)), FrameSettings(MergeSettings(smoothing=False)), 200)
    assert [(c.start, c.warmup) for c in plain] == [(0, 0), (200, 1), (400, 1), (600, 1), (800, 1)]


def test_plan_keeps_a_shot_whole_when_a_run_up_would_cost_more_than_half_a_chunk() -> None:
    heavy = FrameSettings(MergeSettings(mask_smoothing=0.98))  # 570-frame memory
    assert plan_shot(1000, set(range(1000)), heavy, 200) == [FrameRange(0, 1000)]
    assert plan_shot(250, set(range(250)), FrameSettings(MergeSettings()), 200) == [FrameRange(0, 250)]
    assert plan_shot(0, set(), FrameSettings(MergeSettings()), 200) == []


def test_chunk_size_spreads_a_batch_over_the_workers() -> None:
    assert chunk_size([1000, 200], 1) == 1200  # one worker: shots stay whole
    assert chunk_size([1000, 200], 8, chunk_frames=50) == 50
    assert chunk_size([100_000], 10) == 5000
    assert chunk_size([600, 600, 600], 4) == MIN_CHUNK


def test_status_rates_and_table() -> None:
    shots = [ShotStatus("a", "a.mp4", state="done", frames=100, done=100, started=0.0, finished=10.0),
             ShotStatus("b", "b.mp4", state="merging", frames=200, done=60, reused=20, started=10.0),
             ShotStatus("c", "c.mp4", state="failed", error="c.mp4: no such file")]
    status = BatchStatus("jobs.toml", "ws", "in-process", 1, shots, started=0.0)
    assert shots[0].fps == 10.0 and shots[0].eta == 0.0 and shots[2].fps is None
    back = BatchStatus.from_dict(status.to_dict())
    assert back.shots[1].reused == 20 and back.counts() == {"done": 1, "merging": 1, "failed": 1}
    rows = table_rows(status)
    assert rows[0][:4] == ("a", "done", "100/100", "10.0") and rows[2][-1] == "c.mp4: no such file"
    assert rows[-1][0] == "all" and not status.ok
