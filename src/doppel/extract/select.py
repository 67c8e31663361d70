"""Which tracks are the person: by a reference embedding, else the longest track and its matches."""

from __future__ import annotations

import numpy as np


def choose_tracks(means: dict[int, np.ndarray | None], lengths: dict[int, int], reference: np.ndarray | None,
                  match_distance: float) -> tuple[dict[int, float], np.ndarray | None]:
    """The person's tracks, each with its identity distance to the reference, and that reference.

    ``means``: each track's mean identity embedding (``None`` if it has none); ``lengths``: faces
    per track. With ``reference`` (the ``--person`` photo's embedding) the person's tracks are those
    closer than ``match_distance``; without it, the reference is the longest track's embedding, so
    the longest track and every track of the same person are chosen (a person who leaves and
    comes back makes several tracks). Raises ``LookupError`` when no track matches the reference.
    """
    if not lengths:
        raise LookupError("no tracks to choose from")
    ref = reference
    if ref is None:
        longest = max(lengths, key=lambda tid: (lengths[tid], -tid))
        ref = means.get(longest)
        if ref is None:
            return {longest: 0.0}, None
    dist = {tid: float(np.linalg.norm(m - ref)) for tid, m in means.items() if m is not None}
    chosen = {tid: d for tid, d in dist.items() if d < match_distance}
    if not chosen:
        closest = f"{min(dist.values()):.2f}" if dist else "none"
        raise LookupError(f"the person's face is not in this clip (closest face at identity distance {closest}, "
                          f"same person is < {match_distance})")
    return chosen, ref
