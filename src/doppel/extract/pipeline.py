"""The extraction pipeline: one clip in, one identity's aligned faces in the workspace.

:func:`extract_clip` reads top to bottom in steps, each a method of :class:`_ClipRun`:

1. ``probe``: describe and hash the clip (the hash makes re-extraction replace, not duplicate).
2. ``scan``: decode (in a background thread), screen sampled frames for explicit content, track
   faces (:mod:`doppel.extract.track`), smooth each track's landmarks with a fixed lag
   (:mod:`doppel.extract.smooth`), cut the aligned crop with the transform of the *smoothed*
   landmarks and write it (in a writer thread); embed a few faces per track (one every two seconds).
3. ``select``: the person's tracks: those whose mean embedding matches the ``person`` reference,
   else the longest track and the tracks that match it.
4. ``rows``: head pose and the face/frame rows.
5. ``commit``: one transaction replaces this clip's rows for this identity; replaced crop files
   are deleted only after it commits. Any failure before that removes what this run wrote, so
   the workspace is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from doppel.core.errors import InputError, NoFaceError
from doppel.core.progress import ProgressFn, no_progress
from doppel.extract import backends
from doppel.extract.base import Detector, Embedder, Landmarker
from doppel.extract.config import ClipReport, ExtractConfig, check_identity_name, content_hash
from doppel.extract.pose import head_pose
from doppel.extract.prefetch import prefetch
from doppel.extract.quality import blur_score
from doppel.extract.select import choose_tracks
from doppel.extract.smooth import FixedLagSmoother, default_lag
from doppel.extract.track import COASTED_SCORE, FaceTracker, Observation, Timings
from doppel.faceset.query import NewFace, NewTrack, aligned_paths, replace_clip_faces
from doppel.faceset.workspace import Workspace, now
from doppel.io.video import VideoInfo, probe, read_frames, read_image, write_image
from doppel.ops.align import FaceType, estimate_transform, warp_to_face
from doppel.provenance.screen import ClipScreener, Screen

log = logging.getLogger(__name__)

def reference_embedding(image_path: str | Path, *, config: ExtractConfig | None = None) -> np.ndarray:
    """Identity vector of the largest face in a reference photo (``--person``)."""
    cfg = config or ExtractConfig()
    image = read_image(image_path)
    det: Detector = backends.detector(cfg.detector, 1 if max(image.shape[:2]) < 1200 else 0)
    found = det.detect(image)
    if not found:
        raise NoFaceError("no face found in the --person reference photo; use a clear, frontal photo",
                          path=image_path)
    best = max(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    lm = backends.landmarker(cfg.landmarker).landmarks(image, best.box)
    return backends.embedder(cfg.embedder).embed(image, lm)


@dataclass
class _Face:
    obs: Observation
    time: float
    image: np.ndarray | None
    embedding: np.ndarray | None = None
    smooth: np.ndarray | None = None
    transform: np.ndarray | None = None
    path: Path | None = None
    blur: Future[float] | None = None


@dataclass
class _Track:
    id: int
    smoother: FixedLagSmoother
    faces: list[_Face] = field(default_factory=list)
    # Faces not (yet) confirmed by a re-detection: kept only if a confirmation follows.
    pending: list[_Face] = field(default_factory=list)
    last_embed: float = -math.inf

    def mean_embedding(self) -> np.ndarray | None:
        vecs = [f.embedding for f in self.faces if f.embedding is not None]
        return np.mean(vecs, axis=0).astype(np.float32) if vecs else None


def _write_face(image: np.ndarray, transform: np.ndarray, size: int, path: Path, quality: int) -> float:
    face = warp_to_face(image, transform, size)
    write_image(path, face, png_compression=1, jpeg_quality=quality)
    return blur_score(face)


class _ClipRun:
    def __init__(self, ws: Workspace, identity: str, path: Path, cfg: ExtractConfig, person: np.ndarray | None,
                 progress: ProgressFn, screen: Screen | None) -> None:
        self.ws, self.identity, self.path, self.cfg = ws, identity, path, cfg
        self.person, self.progress, self.screen = person, progress, screen
        self.timings = Timings()
        t = time.perf_counter()
        self.detector: Detector = backends.detector(cfg.detector, cfg.upsample)
        self.landmarker: Landmarker = backends.landmarker(cfg.landmarker)
        self.embedder: Embedder = backends.embedder(cfg.embedder)
        self.timings.add("load_models", t)  # once per process: backends are cached
        self.tracks: dict[int, _Track] = {}
        self.examined: list[tuple[int, float]] = []
        self._inflight = threading.BoundedSemaphore(32)

    # 1 ------------------------------------------------------------------------------------------
    def probe(self) -> None:
        t = time.perf_counter()
        self.info: VideoInfo = probe(self.path)
        self.hash = content_hash(self.path)
        self.run_dir = self.ws.faceset_dir(self.identity) / f"{self.hash[:12]}-{uuid.uuid4().hex[:8]}"
        self.lag = self.cfg.smooth_lag if self.cfg.smooth_lag is not None else default_lag(
            self.info.fps / self.cfg.every)
        self.timings.add("probe", t)

    # 2 ------------------------------------------------------------------------------------------
    def scan(self) -> dict[str, Any]:
        cfg = self.cfg
        screener = ClipScreener(self.path, screen=self.screen, every_seconds=cfg.screen_every_seconds)
        tracker = FaceTracker(self.detector, self.landmarker, cfg.tracker(), self.timings)
        total = math.ceil(self.info.frame_count / cfg.every)
        self.run_dir.mkdir(parents=True, exist_ok=False)
        # Screening runs in its own thread (onnxruntime releases the GIL), one frame at a time.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="doppel-writer") as self.pool, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="doppel-screen") as screening:
            screened: list[Future[None]] = []
            t = time.perf_counter()
            for frame in prefetch(read_frames(self.path), depth=8):
                t = self.timings.add("decode_wait", t)
                if screener.wants(frame.index, frame.time):
                    if screened and screened[-1].done():
                        screened[-1].result()  # raise a screening failure now, not at the end
                    screened.append(screening.submit(screener.feed, frame.index, frame.image))
                if frame.index % cfg.every:
                    continue
                self.examined.append((frame.index, frame.time))
                gray = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
                observations, ended = tracker.step(frame.index, gray)
                for tid in ended:
                    self._flush(tid)
                for obs in observations:
                    self._add(obs, frame.time, frame.image)
                self.progress(len(self.examined), total)
                t = time.perf_counter()
            for tid in tracker.finish():
                self._flush(tid, clip_end=True)
            t = time.perf_counter()
            for fut in screened:
                fut.result()
            t = self.timings.add("screen_wait", t)
        self.timings.add("write_wait", t)
        return screener.finish().to_dict()

    def _add(self, obs: Observation, when: float, image: np.ndarray) -> None:
        track = self.tracks.get(obs.track_id)
        if track is None:
            track = self.tracks[obs.track_id] = _Track(obs.track_id, FixedLagSmoother(self.lag))
        face = _Face(obs, when, image)
        if obs.confirmed and when - track.last_embed >= self.cfg.embed_every_seconds:
            t = time.perf_counter()
            face.embedding = self.embedder.embed(image, obs.landmarks)
            track.last_embed = when
            self.timings.add("embed", t)
        if not obs.confirmed:
            track.pending.append(face)
            return
        t = time.perf_counter()
        for f in [*track.pending, face]:
            track.faces.append(f)
            for pos, smooth in track.smoother.push(f.obs.landmarks):
                self._finalise(track.faces[pos], smooth)
        track.pending.clear()
        self.timings.add("smooth_align", t)

    def _flush(self, track_id: int, *, clip_end: bool = False) -> None:
        """The track ended: drop its unconfirmed faces, finalise the rest. At the clip's end, faces
        that were merely not checked (no failed re-detection) are kept."""
        track = self.tracks.get(track_id)
        if track is not None:
            if clip_end:
                for f in track.pending:
                    if f.obs.det_score == COASTED_SCORE:
                        break
                    track.faces.append(f)
                    for pos, smooth in track.smoother.push(f.obs.landmarks):
                        self._finalise(track.faces[pos], smooth)
            track.pending.clear()
            for pos, smooth in track.smoother.flush():
                self._finalise(track.faces[pos], smooth)

    def _finalise(self, face: _Face, smooth: np.ndarray) -> None:
        """Smoothed landmarks are final: align with them and hand the crop to the writer."""
        assert face.image is not None
        face.smooth = smooth.astype(np.float32)
        face.transform = estimate_transform(face.smooth, self.cfg.size, self.cfg.face_type)
        face.path = self.run_dir / f"{face.obs.frame_index:06d}_t{face.obs.track_id}.{self.cfg.image_format}"
        self._inflight.acquire()
        face.blur = self.pool.submit(_write_face, face.image, face.transform, self.cfg.size, face.path,
                                     self.cfg.jpeg_quality)
        face.blur.add_done_callback(lambda _: self._inflight.release())
        face.image = None

    # 3 ------------------------------------------------------------------------------------------
    def select(self) -> tuple[dict[int, float], np.ndarray | None]:
        """Tracks of the person, each with its distance to the reference; and that reference."""
        if not self.tracks:
            raise NoFaceError(f"no face found in any of the {len(self.examined)} frames examined", path=self.path)
        means = {tid: tr.mean_embedding() for tid, tr in self.tracks.items()}
        lengths = {tid: len(tr.faces) for tid, tr in self.tracks.items()}
        try:
            return choose_tracks(means, lengths, self.person, self.embedder.match_distance)
        except LookupError as exc:
            raise NoFaceError(str(exc), path=self.path) from None

    # 4 ------------------------------------------------------------------------------------------
    def rows(self, chosen: dict[int, float], ref: np.ndarray | None
             ) -> tuple[list[NewTrack], list[NewFace], list[tuple[int, float, str]], list[Path]]:
        best: dict[int, tuple[float, int, _Face]] = {}  # frame -> (distance, -length, face)
        for tid, d in chosen.items():
            tr = self.tracks[tid]
            for f in tr.faces:
                key = (d, -len(tr.faces))
                if f.obs.frame_index not in best or key < best[f.obs.frame_index][:2]:
                    best[f.obs.frame_index] = (*key, f)
        keep = {id(v[2]) for v in best.values()}
        unused = [f.path for tr in self.tracks.values() for f in tr.faces if id(f) not in keep and f.path]
        tracks = []
        for tid in chosen:
            faces = [f for f in self.tracks[tid].faces if id(f) in keep]
            if not faces:
                continue
            mean = self.tracks[tid].mean_embedding()
            sim = None
            if mean is not None and ref is not None:
                sim = float(mean @ ref / (np.linalg.norm(mean) * np.linalg.norm(ref) + 1e-12))
            tracks.append(NewTrack(tid, faces[0].obs.frame_index, faces[-1].obs.frame_index, len(faces), mean, sim))
        size = (self.info.width, self.info.height)
        faces_out = []
        for frame_index in sorted(best):
            f = best[frame_index][2]
            assert f.smooth is not None and f.transform is not None and f.path is not None and f.blur is not None
            yaw, pitch, roll = head_pose(f.smooth, size)
            faces_out.append(NewFace(
                track_key=f.obs.track_id, frame_index=frame_index, time=f.time, bbox=f.obs.box,
                det_score=f.obs.det_score, landmarks=f.obs.landmarks, landmarks_smooth=f.smooth, landmark_score=None,
                yaw=yaw, pitch=pitch, roll=roll, blur=f.blur.result(), embedding=f.embedding, transform=f.transform,
                face_type=self.cfg.face_type, size=self.cfg.size, aligned_path=self.ws.rel(f.path)))
        frames = [(i, t, "face" if i in best else "no_face") for i, t in self.examined]
        return tracks, faces_out, frames, unused

    # 5 ------------------------------------------------------------------------------------------
    def commit(self, tracks: list[NewTrack], faces: list[NewFace], frames: list[tuple[int, float, str]],
               result: dict[str, Any]) -> tuple[int, list[str]]:
        info = self.info
        with self.ws.transaction() as c:
            c.execute("INSERT OR IGNORE INTO identities (name, created_at) VALUES (?, ?)", (self.identity, now()))
            ident = int(c.execute("SELECT id FROM identities WHERE name = ?", (self.identity,)).fetchone()[0])
            clip_id = self.ws.add_clip(c, path=str(self.path.resolve()), content_hash=self.hash, kind=info.kind,
                                       width=info.width, height=info.height, fps=info.fps,
                                       frame_count=info.frame_count, duration=info.duration,
                                       has_audio=info.has_audio)
            old = aligned_paths(c, ident, clip_id)
            replace_clip_faces(c, identity_id=ident, clip_id=clip_id, tracks=tracks, faces=faces, frames=frames)
            params = {"identity": self.identity, "clip": str(self.path), **asdict(self.cfg)}
            c.execute("INSERT INTO jobs (kind, status, params, result, started_at, finished_at)"
                      " VALUES ('extract', 'done', ?, ?, ?, ?)",
                      (json.dumps(params, sort_keys=True, default=str),
                       json.dumps({**result, "clip_id": clip_id}, default=str), self.started, now()))
        return clip_id, old

    def cleanup_replaced(self, old: list[str], new: list[NewFace]) -> None:
        keep = {f.aligned_path for f in new}
        dirs = set()
        for rel in old:
            if rel not in keep:
                p = self.ws.abs(rel)
                p.unlink(missing_ok=True)
                dirs.add(p.parent)
        # Also folders of earlier runs on this clip that crashed before committing.
        for d in self.ws.faceset_dir(self.identity).glob(f"{self.hash[:12]}-*"):
            if d != self.run_dir:
                dirs.add(d)
        for d in dirs:
            if d.is_dir() and d != self.run_dir and not any(p for p in d.iterdir() if not p.name.startswith(".")):
                shutil.rmtree(d, ignore_errors=True)


def extract_clip(ws: Workspace, identity: str, path: str | Path, *, every: int = 1, size: int = 256,
                 face_type: FaceType = "full", person: str | Path | np.ndarray | None = None,
                 progress: ProgressFn = no_progress, screen: Screen | None = None,
                 config: ExtractConfig | None = None) -> ClipReport:
    """Extract one person's faces from one clip into ``identity``'s face set, replacing any earlier
    extraction of that clip for that identity.

    ``person``: a reference photo (or its embedding from :func:`reference_embedding`) choosing
    whose faces to keep; default: the longest track. ``screen``: the explicit-content screen
    (default: NudeNet). ``config`` overrides every setting; ``every``/``size``/``face_type`` are
    shorthands applied to it. Raises ``InputError``/``MediaError`` for bad input, ``NoFaceError``
    when no (matching) face is found, ``RefusedError`` for explicit content; on any error the
    workspace is left as it was.
    """
    cfg = config or ExtractConfig()
    if config is None or (every, size, face_type) != (1, 256, "full"):
        cfg = ExtractConfig(**{**asdict(cfg), "every": every, "size": size, "face_type": face_type})
    check_identity_name(identity)
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path=path)
    ref = reference_embedding(person, config=cfg) if isinstance(person, (str, Path)) else person
    start = time.perf_counter()
    run = _ClipRun(ws, identity, path, cfg, ref, progress, screen)
    run.started = now()
    run.probe()
    identity_dir = ws.faceset_dir(identity)
    created_dir = not identity_dir.exists()
    committed = False
    try:
        screen_report = run.scan()
        t = time.perf_counter()
        chosen, ref_used = run.select()
        tracks, faces, frames, unused = run.rows(chosen, ref_used)
        for p in unused:
            p.unlink(missing_ok=True)
        run.timings.add("select", t)
        seconds = time.perf_counter() - start
        with_face = sum(1 for _, _, s in frames if s == "face")
        sims = [tr.similarity for tr in tracks if tr.similarity is not None]
        report = ClipReport(
            identity=identity, clip=str(path), clip_id=-1, frames=len(frames), frames_with_face=with_face,
            faces=len(faces), tracks=len(run.tracks), person_tracks=len(tracks),
            similarity=max(sims) if sims and person is not None else None, seconds=seconds,
            fps=len(frames) / seconds if seconds > 0 else 0.0, screen=screen_report)
        t = time.perf_counter()
        clip_id, old = run.commit(tracks, faces, frames, {k: v for k, v in report.to_dict().items()
                                                          if k not in ("stages", "screen")})
        committed = True
        run.timings.add("commit", t)
        run.cleanup_replaced(old, faces)
    finally:
        if not committed:
            shutil.rmtree(run.run_dir, ignore_errors=True)
            if created_dir:
                with contextlib.suppress(OSError):
                    identity_dir.rmdir()
    report.clip_id = clip_id
    report.seconds = time.perf_counter() - start
    report.fps = report.frames / report.seconds if report.seconds > 0 else 0.0
    report.stages = {k: round(v, 4) for k, v in run.timings.seconds.items()}
    log.info("%s: %d/%d frames with a face, %.1f frames/s", path, report.frames_with_face, report.frames, report.fps)
    return report


__all__ = ["ClipReport", "ExtractConfig", "check_identity_name", "content_hash", "extract_clip",
           "reference_embedding"]
