"""The extraction pipeline: one clip in, one identity's aligned faces and their rows out.

:func:`extract_clip` reads top to bottom in steps, each a method of :class:`_ClipRun`:

1. ``probe``: describe and hash the clip (the hash makes re-extraction replace, not duplicate).
2. ``scan``: decode (in a background thread), screen sampled frames for explicit content, track
   faces (:mod:`doppel.extract.track`), smooth each track's landmarks with a fixed lag
   (:mod:`doppel.extract.smooth`), cut the aligned crop with the transform of the *smoothed*
   landmarks and write it (in a writer thread); embed a few faces per track (one every two seconds).
3. ``select``: the person's tracks: those whose mean embedding matches the ``person`` reference,
   else the longest track and the tracks that match it.
4. ``rows``: head pose and the face/frame rows.
It never opens the workspace: it writes the crops into a new folder under ``out_dir`` and returns
an :class:`Extraction` (the clip, tracks, faces and frame rows); committing them, and deleting the
crops they replace, is :func:`doppel.workflow.extract.extract`'s job. Any failure here removes what
this run wrote.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from doppel.core.clock import now
from doppel.core.errors import InputError, NoFaceError
from doppel.core.names import check_identity_name
from doppel.core.progress import ProgressFn, no_progress
from doppel.extract import backends
from doppel.extract.base import Detector, Embedder, Landmarker
from doppel.extract.config import ClipReport, ExtractConfig, content_hash
from doppel.extract.pose import head_pose
from doppel.extract.prefetch import prefetch
from doppel.extract.quality import blur_score
from doppel.extract.select import choose_tracks
from doppel.extract.smooth import FixedLagSmoother, default_lag
from doppel.extract.track import COASTED_SCORE, FaceTracker, Observation, Timings
from doppel.io.image import read_image, write_image
from doppel.io.video import VideoInfo, media_exists, probe, read_frames
from doppel.ops.align import estimate_transform, warp_to_face
from doppel.provenance.screen import ClipScreener, Screen
from doppel.store.records import NewClip, NewFace, NewTrack

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


@dataclass
class Extraction:
    """What extracting one clip found: rows to commit (crops already written under ``run_dir``)."""

    identity: str
    clip: NewClip
    tracks: list[NewTrack]
    faces: list[NewFace]
    frames: list[tuple[int, float, str]]  # (frame index, time, 'face' | 'no_face') per examined frame
    report: ClipReport
    config: ExtractConfig
    run_dir: Path
    started: str


class _ClipRun:
    def __init__(self, identity: str, path: Path, out_dir: Path, root: Path, cfg: ExtractConfig,
                 person: np.ndarray | None, progress: ProgressFn, screen: Screen | None) -> None:
        self.identity, self.path, self.out_dir, self.root, self.cfg = identity, path, out_dir, root, cfg
        self.person, self.progress, self.screen = person, progress, screen
        self.fps: str | None = None
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
        self.info: VideoInfo = probe(self.path, fps=self.fps)
        self.hash = content_hash(self.path)
        self.run_dir = self.out_dir / f"{self.hash[:12]}-{uuid.uuid4().hex[:8]}"
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
            for frame in prefetch(read_frames(self.path, fps=self.fps), depth=8):
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
                face_type=self.cfg.face_type, size=self.cfg.size,
                aligned_rel=f.path.resolve().relative_to(self.root.resolve()).as_posix()))
        frames = [(i, t, "face" if i in best else "no_face") for i, t in self.examined]
        return tracks, faces_out, frames, unused

    def clip(self) -> NewClip:
        info = self.info
        return NewClip(path=str(self.path.resolve()), content_hash=self.hash, kind=info.kind, width=info.width,
                       height=info.height, fps=info.fps, frame_count=info.frame_count, duration=info.duration,
                       has_audio=info.has_audio)


def extract_clip(identity: str, path: str | Path, out_dir: Path, root: Path, *, config: ExtractConfig,
                 person: str | Path | np.ndarray | None = None, progress: ProgressFn = no_progress,
                 screen: Screen | None = None, fps: str | None = None) -> Extraction:
    """Extract one person's faces from one clip: crops written under ``out_dir`` (``identity``'s face-set
    folder inside the workspace ``root``, to which the returned paths are relative), rows returned.

    ``person``: a reference photo (or its embedding from :func:`reference_embedding`) choosing whose
    faces to keep; default: the longest track. ``screen``: the explicit-content screen (default:
    NudeNet). Raises ``InputError``/``MediaError`` for bad input, ``NoFaceError`` when no (matching)
    face is found, ``RefusedError`` for explicit content; on any error nothing it wrote is left.
    """
    cfg = config
    check_identity_name(identity)
    path = Path(path)
    if not media_exists(path):
        raise InputError("no such file", path=path)
    ref = reference_embedding(person, config=cfg) if isinstance(person, (str, Path)) else person
    start = time.perf_counter()
    run = _ClipRun(identity, path, out_dir, root, cfg, ref, progress, screen)
    run.fps = fps  # an image sequence's frame rate (the times stored with each face)
    started = now()
    run.probe()
    created_dir = not out_dir.exists()
    done = False
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
        report.stages = {k: round(v, 4) for k, v in run.timings.seconds.items()}
        done = True
    finally:
        if not done:
            discard(run.run_dir, out_dir if created_dir else None)
    return Extraction(identity, run.clip(), tracks, faces, frames, report, cfg, run.run_dir, started)


def discard(run_dir: Path, created: Path | None = None) -> None:
    """Remove what an extraction wrote (its crop folder, and ``created``, the face-set folder it made, if empty)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    if created is not None:
        with contextlib.suppress(OSError):
            created.rmdir()


__all__ = ["ClipReport", "ExtractConfig", "Extraction", "content_hash", "discard",
           "extract_clip", "reference_embedding"]
