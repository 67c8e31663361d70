"""The review web app (FastAPI): timeline with glitch scores, frame views, overrides, re-render, export.

Safe by default: :mod:`doppel.review.guard` checks the session token, the ``Host`` header (no DNS
rebinding) and the request size before any route runs; no endpoint takes a path:
files are found from a render id (checked against ``[0-9a-f]+``) and a frame number, and static
assets from a fixed list. Every edit is validated against the merge settings schema.

The app holds no pipeline logic: it calls :mod:`doppel.review.analyse` (measure, re-render
frames) and :func:`doppel.workflow.merge.rerender` (export through merge's writer, watermark and
content credentials included).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi import Body, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from doppel.core.errors import ConfigError, DoppelError, InputError, RefusedError, WorkspaceError
from doppel.core.swap import Swapper
from doppel.io.video import probe
from doppel.merge.settings import CHOICES, schema
from doppel.review import analyse as an
from doppel.review import edits, guard
from doppel.review.cache import UID, ReviewCache, decode_image, encode_jpeg
from doppel.review.glitches import load_scores, ranked
from doppel.review.jobs import Job, Jobs
from doppel.review.preview import PreviewFrames
from doppel.store import Workspace
from doppel.store.records import RenderRecord
from doppel.workflow.merge import frame_settings
from doppel.workflow.merge import rerender as rerender_render
from doppel.workflow.segment import retrain_for_render

log = logging.getLogger(__name__)

VIEWS = ("original", "swapped", "mask", "diff")


def static_files() -> dict[str, Path]:
    """The bundled assets, by file name (the only files the app serves besides a render's cache)."""
    folder = resources.files("doppel.review") / "static"
    return {p.name: Path(str(p)) for p in folder.iterdir() if p.is_file()}


def create_app(root: str | Path, token: str, *, host: str = "127.0.0.1",
               swapper_factory: Callable[[], Swapper] | None = None,
               identity_budget: int = an.IDENTITY_BUDGET) -> FastAPI:
    """The app for the workspace at ``root``. ``swapper_factory`` stands in for loading the render's model
    (tests); by default each re-render or export loads the model the render was made with.
    ``identity_budget``: identity embeddings per analysed render (see :func:`doppel.review.analyse.analyse`)."""
    root = Path(root).resolve()
    Workspace.open(root).close()  # fail now, not on the first request, if it is not a workspace
    assets = static_files()
    jobs = Jobs()
    previews = PreviewFrames()
    app = FastAPI(title="doppel review", docs_url=None, redoc_url=None, openapi_url=None)

    @contextlib.contextmanager
    def workspace() -> Iterator[Workspace]:
        ws = Workspace.open(root)
        try:
            yield ws
        finally:
            ws.close()

    def swapper() -> Swapper | None:
        return swapper_factory() if swapper_factory is not None else None

    def render_of(ws: Workspace, uid: str) -> RenderRecord:
        if not UID.match(uid):
            raise WorkspaceError(f"no render {uid!r}")
        return ws.renders.get(uid)

    def cache_of(uid: str) -> ReviewCache:
        if not UID.match(uid):
            raise WorkspaceError(f"no render {uid!r}")
        with workspace() as ws:
            cache = ReviewCache(ws, uid)
        if not cache.root.resolve().is_relative_to(root):
            raise WorkspaceError(f"no render {uid!r}")
        return cache

    def frame_count(uid: str) -> int:
        """Frames of an analysed render (edits need its measures)."""
        with workspace() as ws:
            render_of(ws, uid)  # 404 for a render that does not exist
        cache = cache_of(uid)
        if not cache.ready():
            raise InputError(f"render {uid} is not analysed yet; analyse it first")
        return int(cache.read_json(cache.scores_path)["frames"])

    def media_of(uid: str) -> tuple[Path, Path]:
        """The render's output and the plate it was made from."""
        with workspace() as ws:
            r = render_of(ws, uid)
            return Path(r.output_path), ws.clips.path_of(r.clip_id, what=f"render {uid}")

    probed: dict[tuple[str, float], dict[str, Any]] = {}

    def media_info(uid: str) -> dict[str, Any]:
        """Frame count, rate and size of a render's output, read from the file (before analysis)."""
        output, _ = media_of(uid)
        try:
            key = (uid, output.stat().st_mtime)
        except OSError:
            raise WorkspaceError(f"render {uid}: its output {output.name} is missing", path=output) from None
        if key not in probed:
            v = probe(output)
            probed[key] = {"frames": v.frame_count, "fps": v.fps, "width": v.width, "height": v.height}
        return probed[key]

    def viewable_frames(uid: str) -> int:
        """Frames the page can show: the analysed ones, or the output's before analysis."""
        cache = cache_of(uid)
        if cache.ready():
            return int(cache.read_json(cache.scores_path)["frames"])
        return int(media_info(uid)["frames"])

    guard.install(app, token, host)

    @app.exception_handler(DoppelError)
    async def doppel_error(request: Request, exc: DoppelError) -> JSONResponse:
        code = {ConfigError: 422, WorkspaceError: 404, RefusedError: 403}.get(type(exc), 400)
        return JSONResponse({"error": exc.message}, status_code=code)

    # -- page and assets ---------------------------------------------------------------------------
    @app.get("/")
    def index() -> Response:
        return FileResponse(assets["index.html"], media_type="text/html")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        path = assets.get(name)
        if path is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(path)

    # -- renders -----------------------------------------------------------------------------------
    @app.get("/api/renders")
    def renders() -> list[dict[str, Any]]:
        with workspace() as ws:
            out = []
            for r in ws.renders.all():
                clip = ws.clips.get(r.clip_id)
                out.append({"uid": r.uid, "status": r.status, "output": Path(r.output_path).name,
                            "clip": clip.path.name, "created_at": r.created_at,
                            "analysed": ReviewCache(ws, r.uid).ready()})
        return out

    @app.get("/api/schema")
    def settings_schema() -> dict[str, Any]:
        return {"schema": schema(), "choices": {k: list(v) for k, v in CHOICES.items()},
                "editable": list(edits.EDITABLE)}

    @app.get("/api/renders/{uid}")
    def render(uid: str) -> Response:
        with workspace() as ws:
            r = render_of(ws, uid)
            cache = ReviewCache(ws, r.uid)
            base = {"uid": r.uid, "status": r.status, "output": Path(r.output_path).name,
                    "settings": r.settings, "overrides": edits.overrides_json(ws, r.id)}
            if not cache.ready():
                job = jobs.running("analyse", r.uid)
                return JSONResponse({**base, **media_info(r.uid), "analysed": False,
                                     "analysis": None if job is None else job.to_dict()})
            data = cache.read_json(cache.scores_path)
            data.update(base, analysed=True, dirty=len(an.dirty_frames(ws, r.id)), stale=an.is_stale(ws, r.id))
        return JSONResponse(data)

    @app.get("/api/renders/{uid}/glitches")
    def glitches(uid: str, top: int = 20) -> list[dict[str, Any]]:
        if not 1 <= top <= 100000:
            raise ConfigError(f"top={top}: expected 1..100000")
        with workspace() as ws:
            r = render_of(ws, uid)
            return [g.to_dict() for g in ranked(load_scores(ws, r.id), top)]

    @app.get("/api/renders/{uid}/sheets/{number}.jpg")
    def sheet(uid: str, number: int) -> Response:
        cache = cache_of(uid)
        path = cache.sheet(number) if 0 <= number < 10000 else None
        if path is None or not path.is_file():
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/api/renders/{uid}/frames/{index}")
    def frame_info(uid: str, index: int) -> dict[str, Any]:
        n = viewable_frames(uid)
        if not 0 <= index < n:
            raise ConfigError(f"frame {index} is out of range 0..{n - 1}")
        with workspace() as ws:
            r = render_of(ws, uid)
            row = ws.renders.frame(r.id, index)
            scored = ws.scores.at(r.id, index)
            settings = frame_settings(ws, r)
            at = settings.at(index)
            return {
                "frame": index, "status": row.status if row else None,
                "occlusion": row.occlusion if row else None, "shot_cut": row.shot_cut if row else False,
                "score": scored.score if scored else None, "reasons": scored.reasons if scored else [],
                "settings": at.model_dump(mode="json"),
                "overrides": [o.id for o in settings.overrides if o.covers(index)],
                "polygons": edits.polygons_at(ws, r, index),
            }

    @app.get("/api/renders/{uid}/frames/{index}/{view}.jpg")
    def frame_image(uid: str, index: int, view: str) -> Response:
        if view not in VIEWS:
            return JSONResponse({"error": f"unknown view {view!r}; one of {', '.join(VIEWS)}"}, status_code=404)
        cache = cache_of(uid)
        if index < 0 or index > 10_000_000:
            return JSONResponse({"error": "not found"}, status_code=404)
        orig, out = cache.frame("orig", index), cache.frame("out", index)
        if not out.is_file():  # not analysed (yet): straight from the media
            return media_image(uid, index, view)
        if view == "original":
            return FileResponse(orig, media_type="image/jpeg")
        if view == "swapped":
            return FileResponse(out, media_type="image/jpeg")
        merged = decode_image(out)
        if merged is None:
            return JSONResponse({"error": f"cached frame {index} is damaged; analyse the render again"},
                                status_code=404)
        return view_image(view, merged, lambda: decode_image(orig), cache.frame("mask", index))

    def media_image(uid: str, index: int, view: str) -> Response:
        output, plate = media_of(uid)
        image = previews.frame(plate if view == "original" else output, index)
        if image is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        if view in ("original", "swapped"):
            return Response(encode_jpeg(image), media_type="image/jpeg")
        return view_image(view, image, lambda: previews.frame(plate, index), None)

    def view_image(view: str, merged: np.ndarray, plate_of: Callable[[], np.ndarray | None],
                   mask_path: Path | None) -> Response:
        """The diff (x4) or the matte drawn over the merged frame (the matte is known after analysis)."""
        if view == "diff":
            plate = plate_of()
            diff = np.zeros_like(merged) if plate is None else cv2.absdiff(merged, plate)
            image = np.clip(diff.astype(np.float32) * 4.0, 0, 255).astype(np.uint8)
        else:
            mask = None if mask_path is None else decode_image(mask_path, "gray")
            image = merged.copy()
            if mask is not None:  # tinted as strongly as the swap shows; outlined where it is at least half
                alpha = 0.45 * mask.astype(np.float32)[..., None] / 255.0
                tint = np.array([255, 40, 60], np.float32)
                image = (image.astype(np.float32) * (1.0 - alpha) + tint * alpha).astype(np.uint8)
                on = mask > 127
                contours, _ = cv2.findContours(on.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(image, contours, -1, (255, 255, 0), 1)
        return Response(encode_jpeg(image), media_type="image/jpeg")

    # -- edits -------------------------------------------------------------------------------------
    @app.post("/api/renders/{uid}/overrides")
    def add_override(uid: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        n = frame_count(uid)
        first, last = body.get("first"), body.get("last", body.get("first"))
        if type(first) is not int or type(last) is not int:  # JSON integers only: not 2.7, true or "3"
            raise ConfigError("an override needs integer 'first' (and optional 'last') frames")
        with workspace() as ws:
            r = render_of(ws, uid)
            oid = edits.add_settings_override(ws, r.id, first, last, body.get("settings"), n)
            return {"id": oid, "first": first, "last": last, "dirty": len(an.dirty_frames(ws, r.id))}

    @app.delete("/api/renders/{uid}/overrides/{override_id}")
    def delete_override(uid: str, override_id: int) -> dict[str, Any]:
        with workspace() as ws:
            r = render_of(ws, uid)
            if override_id not in {o.id for o in ws.renders.overrides(r.id)}:
                raise WorkspaceError(f"render {uid} has no override {override_id}")
            ws.renders.remove_override(override_id)
            return {"deleted": override_id, "dirty": len(an.dirty_frames(ws, r.id))}

    @app.post("/api/renders/{uid}/polygons")
    def polygons(uid: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        n = frame_count(uid)
        polys = body.get("polygons")
        if not isinstance(polys, list):
            raise ConfigError("'polygons' must be a list of {mode, points}")
        frame = edits.frame_number(body.get("frame"), "'frame'", n)
        with workspace() as ws:
            r = render_of(ws, uid)
            oid, first, last = edits.set_polygons(ws, r.id, frame, polys, n)
            return {"id": oid, "first": first, "last": last, "dirty": len(an.dirty_frames(ws, r.id))}

    # -- work --------------------------------------------------------------------------------------
    def start(kind: str, uid: str, work: Callable[[Workspace, RenderRecord, Callable[[int, int | None], None]], Any],
              once: bool = False) -> dict[str, Any]:
        with workspace() as ws:
            render_of(ws, uid)

        def run(job: Job) -> Any:
            def progress(done: int, total: int | None) -> None:
                job.done, job.total = done, total

            with workspace() as ws:
                return work(ws, render_of(ws, uid), progress)

        return jobs.start(kind, uid, run, once=once).to_dict()

    @app.post("/api/renders/{uid}/analyse")
    def analyse(uid: str) -> dict[str, Any]:
        return start("analyse", uid, lambda ws, r, progress: an.analyse(ws, r.id, swapper=swapper(), progress=progress,
                                                                        identity_budget=identity_budget).to_dict(),
                     once=True)

    @app.post("/api/renders/{uid}/rerender")
    def rerender(uid: str, body: dict[str, Any] = Body(default={})) -> dict[str, Any]:
        frames = body.get("frames")
        if frames is not None:
            n = frame_count(uid)
            if not isinstance(frames, list) or len(frames) > n:
                raise ConfigError(f"'frames' must be a list of frame numbers in 0..{n - 1}")
            frames = [edits.frame_number(f, "each of 'frames'", n) for f in frames]
        else:
            frame_count(uid)

        def work(ws: Workspace, r: RenderRecord, progress: Callable[[int, int | None], None]) -> Any:
            return {"frames": an.refresh(ws, r.id, frames, swapper=swapper(), progress=progress)}

        return start("rerender", uid, work)

    @app.post("/api/renders/{uid}/retrain-mask")
    def retrain_mask(uid: str, body: dict[str, Any] = Body(default={})) -> dict[str, Any]:
        minutes = body.get("minutes", an.RETRAIN_MINUTES)
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0.05 <= minutes <= 60:
            raise ConfigError("'minutes' must be a number of minutes in 0.05..60")
        frame_count(uid)

        def work(ws: Workspace, r: RenderRecord, progress: Callable[[int, int | None], None]) -> Any:
            trained = retrain_for_render(ws, r.id, minutes=minutes, progress=progress)
            frames = an.refresh(ws, r.id, an.swapped_frames(ws, r.id), swapper=swapper(), progress=progress)
            return {"segmenter": trained.to_dict(), "frames": frames}

        return start("retrain-mask", uid, work)

    @app.post("/api/renders/{uid}/export")
    def export(uid: str) -> dict[str, Any]:
        frame_count(uid)

        def work(ws: Workspace, r: RenderRecord, progress: Callable[[int, int | None], None]) -> Any:
            an.refresh(ws, r.id, None, swapper=swapper())
            report = rerender_render(ws, r.id, swapper=swapper(), progress=progress)
            an.adopt_merge(ws, r.id)  # the cache already shows these frames: mark it current for the new merge
            return {"output": report.output, "frames": report.frames, "provenance": report.provenance}

        return start("export", uid, work)

    @app.get("/api/jobs/{job_id}")
    def job(job_id: int) -> Response:
        found = jobs.get(job_id)
        if found is None:
            return JSONResponse({"error": f"no job {job_id}"}, status_code=404)
        return JSONResponse(found.to_dict())

    return app
