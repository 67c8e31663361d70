"""Glitch scoring with the segmenter's signals: a frame where an occluder leaks ranks first; a blink that the
swap follows is not flagged."""

from __future__ import annotations

import numpy as np

from doppel.review.glitches import Measure, ranked, score


def _render(n: int = 60, seed: int = 0) -> list[Measure]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append(Measure(i, "swapped", occlusion=float(rng.uniform(0.0, 0.02)), landmark_score=0.9,
                           mouth=float(abs(rng.normal(0, 0.01))), eyes=float(abs(rng.normal(0, 0.01))),
                           segment=float(rng.uniform(0.01, 0.02)), leak=float(rng.uniform(0.0, 0.002))))
    return out


def test_leaking_frames_rank_first_and_occluded_ones_next() -> None:
    measures = _render()
    for i in range(20, 30):  # a hand over the face, handled: the segmenter is less sure, nothing leaks
        measures[i].occlusion, measures[i].segment = 0.2, 0.05
    for i in (24, 25, 26):  # ... except here, where some of it was painted over
        measures[i].segment, measures[i].leak = 0.09, 0.04
    top = [g.frame for g in ranked(score(measures), 10)]
    assert set(top[:3]) == {24, 25, 26}
    assert set(top) <= set(range(20, 30))
    reasons = {r["reason"] for g in score(measures) if g.frame == 25 for r in g.reasons}
    assert {"leak", "segment"} <= reasons


def test_a_blink_the_swap_follows_is_not_flagged() -> None:
    measures = _render(seed=1)
    # the plate blinks at 30-32 and the swap blinks with it: eye openness agrees, the face is all visible
    for i in (30, 31, 32):
        measures[i].eyes = 0.005
    glitches = score(measures)
    assert not any(g.flagged for g in glitches if g.frame in (30, 31, 32))
