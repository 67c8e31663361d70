"""bench_quality's report of issue 12's figures: its table and the pass/fail of each bar (no training here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_quality", BENCH / "bench_quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(bq: Any) -> dict[str, Any]:
    metrics = {k: 0.5 for k in bq.METRICS}
    metrics.update(sharpness_ratio=0.83, warp_error_ratio=1.2, warp_error_p95=None, id_retrieval=1.0,
                   id_src_wins=0.97, mouth_corr=0.9, eye_corr=0.6, expression_nme=0.04, pose_error_deg=9.0)
    own = {"frames": 40, "ssim": 0.86, "psnr": 31.2, "gmsd": 0.08, "sharpness_ratio": 0.7, "sharpness_p10": 0.6,
           "sharpness_p90": 0.8, "passes": False}
    return {"metrics": metrics, "train": {"curve": [{"eval_ssim": 0.81}], "steps": 640, "images_per_s": 5.7},
            "threads": 1, "self_swap": own, "self_swap_sharpen1": {**own, "ssim": 0.84, "sharpness_ratio": 1.4}}


def test_bars_pass_fail_or_missing() -> None:
    bq = _module()
    got = bq.bars(_run(bq))
    assert got["sharpness >= 0.8"] is True and got["warp error <= 1.15"] is False
    assert got["warp error p95 <= 1.3"] is None  # not measured: neither passed nor failed
    assert got["self-swap SSIM >= 0.85"] is True and got["self-swap sharpness in [0.8, 1.25]"] is False
    assert got["eye corr >= 0.7"] is False and got["pose <= 8 deg"] is False and got["NME <= 0.045"] is True
    assert bq.bars({"error": "child failed"}) == {label: None for label, *_ in bq.BARS}


def test_table_shows_the_new_figures_and_the_self_swap() -> None:
    bq = _module()
    text = "\n".join(bq._table({"d18->d19": _run(bq), "d3->s18": {"error": "child failed"}}))
    assert "| 0.83 (0.50-0.50) | 1.20 (--) 0.50 |" in text
    assert "| d18->d19 | 40 | 0.860 | 31.2 | 0.0800 | 0.70 (0.60-0.80) | 0.840 / 0.0800 / 1.40 |" in text
    assert ("6 of 10; fails: self-swap sharpness in [0.8, 1.25], eye corr >= 0.7, pose <= 8 deg, "
            "warp error <= 1.15 |") in text
    assert "| d3->s18 | error: child failed |" in text
