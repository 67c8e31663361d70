"""Merging: put a trained model's face into every frame (masks, colour, blend, time, occlusion).

The stage takes data (a loaded swapper, the destination's faces, per-frame settings, a cache folder,
a :class:`~doppel.merge.provenance.Provenance`) and never opens the workspace:

- :func:`doppel.merge.pipeline.run`: a whole clip, pipelined in threads, written atomically with the
  watermark on every frame and content credentials on the file; each frame's row goes to a callback.
- :mod:`doppel.merge.stages`: decode, align + batched inference, and the sequential
  :class:`~doppel.merge.stages.Compositor` (shot cuts, temporal smoothing) that review's replay reuses.
- :mod:`doppel.merge.settings`: :class:`~doppel.merge.settings.MergeSettings` (frozen, validated),
  ``CHOICES`` and ``schema()`` (the allowed values, for the CLI and the review app), overrides.
- :mod:`doppel.merge.cache`: per-frame model output, so resuming or re-rendering never reruns inference.
- Plug-ins: :data:`doppel.merge.colour.COLOUR_TRANSFERS` (none, rct, lct, mkl, idt, hist) and
  :data:`doppel.merge.blend.BLENDS` (alpha, poisson).
- :func:`doppel.merge.temporal.flicker_ratio`: output change over input change inside the face.

Running a merge in a workspace (model by name, consent, render record, destination faces, resume) is
:mod:`doppel.workflow.merge`; replaying a saved render for review is :mod:`doppel.workflow.replay`.
"""
