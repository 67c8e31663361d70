"""Merging: put a trained model's face into every frame (masks, colour, blend, time, occlusion).

Entry points:

- :func:`doppel.merge.pipeline.merge` (``doppel merge``): a whole clip, pipelined in threads,
  resumable (per-frame model output is cached under ``WS/renders/cache/``), written atomically
  with the watermark on every frame and content credentials on the file.
- :mod:`doppel.merge.settings`: :class:`~doppel.merge.settings.MergeSettings` (frozen, validated),
  ``CHOICES`` and ``schema()`` (the allowed values, for the CLI and the review app), overrides.
- :mod:`doppel.merge.store`: renders, per-frame rows (status, occlusion, shot cut) and the
  per-frame/per-range overrides the review app edits (``add_override``, ``remove_override``,
  ``overrides_of``, ``frame_settings``, ``frames_of``).
- :mod:`doppel.merge.replay`: ``replay(ws, render_id, frames)`` recomputes a saved render's frames
  with its current overrides, each with its plate and matte region (what review shows and scores).
- :mod:`doppel.merge.review`: ``render_frames(ws, render_id, frames)`` re-renders chosen frames with
  the current overrides (cached inference, temporal warm-up), ``rerender(ws, render_id)`` re-encodes.
- Plug-ins: :data:`doppel.merge.colour.COLOUR_TRANSFERS` (none, rct, lct, mkl, idt, hist) and
  :data:`doppel.merge.blend.BLENDS` (alpha, poisson).
- :func:`doppel.merge.temporal.flicker_ratio`: the steadiness metric (output change over input
  change inside the face, frame to frame).
"""
