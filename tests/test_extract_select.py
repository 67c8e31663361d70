"""Choosing the person's tracks from their mean identity embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from doppel.extract.select import choose_tracks

A, A2, B = np.zeros(4), np.array([0.1, 0, 0, 0]), np.array([1.0, 0, 0, 0])


def test_longest_track_and_its_matches() -> None:
    chosen, ref = choose_tracks({1: A, 2: B, 3: A2}, {1: 50, 2: 80, 3: 10}, None, 0.6)
    assert set(chosen) == {2} and ref is B  # B's track is longest; A's tracks are someone else
    chosen, _ = choose_tracks({1: A, 2: B, 3: A2}, {1: 90, 2: 80, 3: 10}, None, 0.6)
    assert chosen == pytest.approx({1: 0.0, 3: 0.1})


def test_reference_picks_the_person() -> None:
    chosen, ref = choose_tracks({1: A, 2: B}, {1: 5, 2: 80}, A2, 0.6)
    assert set(chosen) == {1} and ref is A2
    with pytest.raises(LookupError, match=r"closest face at identity distance 0\.90"):
        choose_tracks({2: B}, {2: 80}, A2, 0.6)


def test_track_without_embedding() -> None:
    assert choose_tracks({1: None}, {1: 3}, None, 0.6) == ({1: 0.0}, None)
    with pytest.raises(LookupError):
        choose_tracks({}, {}, None, 0.6)
