"""Load on the review app: 20 clients browsing a 1,000-frame render and posting overrides for 60 s.

The same analysed render as ``bench_review`` is served by uvicorn on 127.0.0.1. Each of 20 concurrent
clients (one asyncio task each, sharing nothing) loops: the render's summary (what a page load
fetches), a random frame's details and one of its four views, now and then a thumbnail sheet, and
every tenth loop an override of its own (a distinct frame range and setting). Measured: requests,
errors (any status >= 400 or a failed connection), p50/p95 latency of summaries and of frame
images. Afterwards the workspace must hold exactly the overrides the server acknowledged: none lost,
none duplicated, each with the value posted. Target: no error, no lost or duplicated override.
``--quick``: 5 clients for 10 s.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from bench_review import FRAMES, serving  # noqa: E402

VIEWS = ("original", "swapped", "mask", "diff")


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0], 4)


async def _client(n: int, base: str, token: str, uid: str, until: float, log: dict[str, Any]) -> None:
    import httpx

    rng = random.Random(n)
    async with httpx.AsyncClient(base_url=base, headers={"X-Doppel-Token": token}, timeout=30) as c:
        loops = 0
        while time.monotonic() < until:
            loops += 1
            try:
                t = time.perf_counter()
                r = await c.get(f"/api/renders/{uid}")
                log["page"].append(time.perf_counter() - t)
                log["status"].append(r.status_code)
                frame = rng.randrange(FRAMES)
                r = await c.get(f"/api/renders/{uid}/frames/{frame}")
                log["status"].append(r.status_code)
                t = time.perf_counter()
                r = await c.get(f"/api/renders/{uid}/frames/{frame}/{rng.choice(VIEWS)}.jpg")
                log["frame"].append(time.perf_counter() - t)
                log["status"].append(r.status_code)
                if loops % 5 == 0:
                    r = await c.get(f"/api/renders/{uid}/sheets/{rng.randrange(3)}.jpg")
                    log["status"].append(r.status_code)
                if loops % 10 == 0:
                    first = n * 40 + (loops // 10) % 40  # a frame range of this client's own
                    blur = rng.randrange(0, 64)
                    r = await c.post(f"/api/renders/{uid}/overrides",
                                     json={"first": first, "last": first, "settings": {"mask_blur": blur}})
                    log["status"].append(r.status_code)
                    if r.status_code == 200:
                        log["overrides"].append((r.json()["id"], first, blur))
            except httpx.HTTPError as exc:
                log["errors"].append(f"{type(exc).__name__}: {exc}")


async def _load(base: str, token: str, uid: str, clients: int, seconds: float) -> dict[str, Any]:
    log: dict[str, Any] = {"page": [], "frame": [], "status": [], "errors": [], "overrides": []}
    until = time.monotonic() + seconds
    await asyncio.gather(*(_client(n, base, token, uid, until, log) for n in range(clients)))
    return log


def run(quick: bool) -> dict[str, Any]:
    from doppel.store import Workspace

    clients, seconds = (5, 10.0) if quick else (20, 60.0)
    work = Path(tempfile.mkdtemp(prefix="doppel-bench-load-"))
    try:
        with serving(work, quick) as (base, token, uid, _):
            log = asyncio.run(_load(base, token, uid, clients, seconds))
        with Workspace.open(work / "ws") as ws:
            stored = {o.id: (o.first, o.changes.get("mask_blur")) for o in ws.renders.overrides(ws.renders.get(uid).id)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    acknowledged = {oid: (first, blur) for oid, first, blur in log["overrides"]}
    lost = [oid for oid in acknowledged if oid not in stored]
    wrong = [oid for oid, v in acknowledged.items() if oid in stored and stored[oid] != v]
    extra = [oid for oid in stored if oid not in acknowledged]
    bad = [s for s in log["status"] if s >= 400]
    requests = len(log["status"])
    passed = not bad and not log["errors"] and not lost and not wrong and not extra and len(acknowledged) > 0
    page95, frame95 = _p(log["page"], 95), _p(log["frame"], 95)
    return {
        "target": f"{clients} clients for {seconds:g} s: no error, no lost or duplicated override",
        "passed": passed, "clients": clients, "seconds": seconds, "requests": requests,
        "requests_per_s": round(requests / seconds, 1), "http_errors": len(bad), "connection_errors": log["errors"][:5],
        "overrides_acknowledged": len(acknowledged), "overrides_lost": lost, "overrides_wrong": wrong,
        "overrides_unexpected": extra,
        "page_p50_s": _p(log["page"], 50), "page_p95_s": page95,
        "frame_p50_s": _p(log["frame"], 50), "frame_p95_s": frame95,
        "headline": (f"{clients} clients, {requests / seconds:.0f} req/s: {len(bad)} errors, "
                     f"{len(acknowledged)} overrides ({len(lost)} lost, {len(extra)} extra); "
                     f"p95 summary {page95}s, frame {frame95}s"),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=2))
