"""Review: glitch scores per merged frame, and a local web app to step through and fix them.

The app holds no pipeline logic: it calls :mod:`doppel.merge` to re-render and export, and
:mod:`doppel.review.analyse` to measure and rank frames.
"""
