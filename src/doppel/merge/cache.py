"""Per-frame cache of model output, so that resuming or re-rendering never reruns inference.

One folder per (model weights, clip, crop) under ``WS/renders/cache/``; one file per frame: an ``.npy``
array (uint16 ``(S, S, 4)``, no pickle) of the swapped face in RGB and the learned mask in the fourth
channel, **encrypted** with AES-256-GCM under the workspace's cache key (``WS/keys/cache.key``): the
cache holds faces doppel rendered but has not yet watermarked, so nothing outside the workspace's keys
can read one. Uncompressed on purpose: writing an entry costs about a millisecond. The file name carries
a hash of the frame's crop transform, so re-extracted landmarks never reuse a stale face. Each file is
written atomically: an interrupted merge leaves only complete entries; a damaged or foreign entry fails
to decrypt and counts as a miss.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from doppel.store.records import ModelRecord

CACHE_VERSION = 3  # 3: entries encrypted
MAGIC = b"DPC3"


def model_fingerprint(model: ModelRecord) -> str:
    """Changes whenever the model's weights may have changed (so the cache never serves stale faces)."""
    parts = [model.name, str(model.id), str(model.step), model.updated_at, str(model.resolution), model.face_type]
    if model.path.is_dir():
        for f in sorted(model.path.iterdir()):
            if f.is_file():
                st = f.stat()
                parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def cache_dir(renders_dir: Path, model_fingerprint: str, clip_hash: str, resolution: int, face_type: str) -> Path:
    key = hashlib.sha256(f"{CACHE_VERSION}|{model_fingerprint}|{clip_hash}|{resolution}|{face_type}".encode())
    return renders_dir / "cache" / key.hexdigest()[:20]


class InferenceCache:
    def __init__(self, folder: Path, key: bytes) -> None:
        self.folder = folder
        self._aead = AESGCM(key)
        self.hits = 0
        self.misses = 0

    def _path(self, frame_index: int, transform: np.ndarray) -> Path:
        digest = hashlib.sha1(np.round(np.asarray(transform, np.float64), 4).tobytes()).hexdigest()[:10]
        return self.folder / f"{frame_index:06d}_{digest}.npy"

    def get(self, frame_index: int, transform: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached ``(face (S, S, 3), mask (S, S))`` float32 in [0, 1], or None."""
        path = self._path(frame_index, transform)
        try:
            blob = path.read_bytes()
            if not blob.startswith(MAGIC):
                raise ValueError("not a cache entry")
            plain = self._aead.decrypt(blob[4:16], blob[16:], path.name.encode())
            data = np.load(io.BytesIO(plain), allow_pickle=False)
        except (OSError, ValueError, InvalidTag):
            data = None
        if data is None or data.dtype != np.uint16 or data.ndim != 3 or data.shape[2] != 4:
            self.misses += 1
            return None
        self.hits += 1
        rgba = data.astype(np.float32) / 65535.0
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])

    def put(self, frame_index: int, transform: np.ndarray, face: np.ndarray, mask: np.ndarray) -> None:
        rgba = np.concatenate([face, mask[..., None]], axis=2)
        data = np.clip(rgba * 65535.0 + 0.5, 0, 65535).astype(np.uint16)
        # temp + rename (no fsync: a torn entry after a power cut fails to load and counts as a miss)
        self.folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, data, allow_pickle=False)
        final = self._path(frame_index, transform)
        nonce = os.urandom(12)
        blob = MAGIC + nonce + self._aead.encrypt(nonce, buf.getvalue(), final.name.encode())
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
