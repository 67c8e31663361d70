"""What merge asks of ``doppel.provenance``: a watermark on every frame, credentials after.

There is no switch to turn any of it off: a :class:`Provenance` is part of every merge run, and it
is made from the consent record of the model's source identity (checked again here).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from doppel.provenance.consent import check_consent
from doppel.provenance.credentials import RenderCredentials, embed_credentials, sidecar_path
from doppel.provenance.manifest import MANIFEST_NAME, write_manifest
from doppel.provenance.watermark import Watermarker
from doppel.store.records import ConsentRecord

log = logging.getLogger(__name__)


class Provenance:
    """Per-render provenance: the consent it rests on, the watermark it carries, its credentials
    (signed with the identity in ``keys_dir``, a workspace's ``keys/``)."""

    def __init__(self, keys_dir: Path, consent: ConsentRecord | None, identity: str) -> None:
        self.keys_dir = keys_dir
        self.consent_hash = check_consent(consent, identity).record_hash
        self.identity = identity
        self.consent_hashes = [self.consent_hash]  # one per source identity of the render's models
        self._mark: Watermarker | None = None
        self.payload: int | None = None
        self.uid: str | None = None

    def add_source(self, consent: ConsentRecord | None, identity: str) -> None:
        """One more source identity in the same render (a shot with several people): its consent is checked
        and listed in the credentials with the first's."""
        record = check_consent(consent, identity).record_hash
        if record not in self.consent_hashes:
            self.consent_hashes.append(record)

    def set_render(self, uid: str, payload: int | None) -> None:
        if payload is None:
            raise ValueError(f"render {uid} has no watermark payload")
        self.uid, self.payload = uid, payload
        self._mark = Watermarker(payload)

    def watermark(self, rgb: np.ndarray) -> np.ndarray:
        """The frame with the invisible watermark embedded (uint8 ``(H, W, 3)`` RGB in and out)."""
        if self._mark is None:
            raise RuntimeError("set_render() must come before watermark()")
        return self._mark.embed(rgb)

    def mark_face(self, face: np.ndarray) -> np.ndarray:
        """A swapped face for a layer file (float32 ``(S, S, 3)`` RGB in [0, 1]) with the watermark in it, at
        full precision: the mark is computed on the 8-bit face and its change added to the float one."""
        if self._mark is None:
            raise RuntimeError("set_render() must come before mark_face()")
        face8 = np.clip(face * 255.0 + 0.5, 0, 255).astype(np.uint8)
        delta = self._mark.embed(face8).astype(np.float32) - face8.astype(np.float32)
        return np.clip(face + delta / 255.0, 0.0, 1.0).astype(np.float32)

    def render_info(self, *, model_name: str, model_id: int | None) -> dict[str, Any]:
        return {"render_uid": self.uid, "watermark_payload": self.payload, "consent_hashes": list(self.consent_hashes),
                "model_name": model_name, "model_id": model_id}

    def sign_image(self, path: Path, *, model_name: str, model_id: int | None, what: str) -> None:
        """Embed content credentials in an image doppel wrote (PNG, TIFF, JPEG), in place, no sidecar."""
        if self.uid is None:
            raise RuntimeError("set_render() must come before sign_image()")
        info = RenderCredentials(render_uid=self.uid, model_name=model_name, model_id=model_id,
                                 consent_hashes=list(self.consent_hashes), watermark_payload=self.payload,
                                 title=path.name, actions=[("c2pa.edited", what)])
        embed_credentials(self.keys_dir, path, info, sidecar=False)

    def seal(self, folder: Path, files: list[Path], *, model_name: str, model_id: int | None,
             name: str = MANIFEST_NAME) -> Path:
        """The signed manifest over ``files`` in ``folder`` (see :mod:`doppel.provenance.manifest`)."""
        return write_manifest(folder, files, self.keys_dir, self.render_info(model_name=model_name,
                                                                            model_id=model_id), name=name)

    def credentials(self, video: Path, final: Path, *, model_name: str, model_id: int | None,
                    frames: int, swapped: int) -> Path:
        """Sign content credentials into the finished ``video`` (a temporary file that will be renamed to
        ``final``) in place. Returns the sidecar written beside ``video``; move it beside ``final`` with
        :func:`place_sidecar` once the video is in place."""
        if self.uid is None:
            raise RuntimeError("set_render() must come before credentials()")
        info = RenderCredentials(
            render_uid=self.uid, model_name=model_name, model_id=model_id, consent_hashes=list(self.consent_hashes),
            watermark_payload=self.payload, title=final.name,
            actions=[("c2pa.edited", f"face replaced with model {model_name} in {swapped} of {frames} frames")])
        return Path(embed_credentials(self.keys_dir, video, info))


def place_sidecar(sidecar: Path, final_video: Path) -> Path:
    """Move the credentials sidecar of a renamed video beside it (``final_video`` with suffix ``.c2pa``)."""
    target = sidecar_path(final_video)
    os.replace(sidecar, target)
    return target
