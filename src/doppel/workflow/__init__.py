"""The workflow layer: what sits between the shells (CLI, review app, demo, benchmarks) and the stages.

It resolves settings (preset -> base -> resume -> flags), finds models and renders by the names
people type, makes sure the destination's faces exist before a merge, creates workspaces with
their keys, reads what a stage needs from the store and writes back what it returns. Stages
(:mod:`doppel.extract`, :mod:`doppel.train`, :mod:`doppel.merge`, :mod:`doppel.eval`) take data and
return data; only this layer (and the review app above it) opens a workspace for them.
"""
