"""What merge asks of ``doppel.provenance``: consent before, a watermark on every frame, credentials after.

There is no switch to turn any of it off. If this build of doppel lacks the watermark or the
credentials module, merging refuses rather than writing an unmarked video.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from doppel.core.errors import RefusedError
from doppel.faceset.workspace import Workspace
from doppel.provenance.consent import require_consent

log = logging.getLogger(__name__)


class Provenance:
    """Per-render provenance: the consent it rests on, the watermark it carries, its credentials."""

    def __init__(self, ws: Workspace, consent_hash: str, identity: str) -> None:
        self.ws = ws
        self.consent_hash = consent_hash
        self.identity = identity
        self._embed: Callable[[np.ndarray], np.ndarray] | None = None
        self.payload: int | None = None
        self.uid: str | None = None

    def set_render(self, uid: str, payload: int | None) -> None:
        try:
            from doppel.provenance.watermark import Watermarker
        except ImportError:
            raise RefusedError("refused: this doppel has no watermark module (doppel.provenance.watermark); "
                               "merge never writes an unmarked video") from None
        self.uid, self.payload = uid, payload
        self._embed = Watermarker(payload).embed

    def watermark(self, rgb: np.ndarray) -> np.ndarray:
        """The frame with the invisible watermark embedded (uint8 ``(H, W, 3)`` RGB in and out)."""
        if self._embed is None:
            raise RuntimeError("set_render() must come before watermark()")
        return self._embed(rgb)

    def credentials(self, video: Path, final: Path, *, model_name: str, model_id: int | None,
                    frames: int, swapped: int) -> Path:
        """Sign content credentials into the finished ``video`` (a temporary file that will be renamed to
        ``final``) in place. Returns the sidecar written beside ``video``; move it beside ``final`` with
        :func:`place_sidecar` once the video is in place."""
        from doppel.provenance.credentials import RenderCredentials, embed_credentials

        if self.uid is None:
            raise RuntimeError("set_render() must come before credentials()")
        info = RenderCredentials(
            render_uid=self.uid, model_name=model_name, model_id=model_id, consent_hashes=[self.consent_hash],
            watermark_payload=self.payload, title=final.name,
            actions=[("c2pa.edited", f"face replaced with model {model_name} in {swapped} of {frames} frames")])
        return Path(embed_credentials(self.ws, video, info))


def place_sidecar(sidecar: Path, final_video: Path) -> Path:
    """Move the credentials sidecar of a renamed video beside it (``final_video`` with suffix ``.c2pa``)."""
    from doppel.provenance.credentials import sidecar_path

    target = sidecar_path(final_video)
    os.replace(sidecar, target)
    return target


def provenance_for(ws: Workspace, src_identity: str | None) -> Provenance:
    """Check consent for the model's source identity (refuses without it) and start provenance."""
    if src_identity is None:
        raise RefusedError("refused: the model records no source identity, so its consent cannot be checked; "
                           "retrain it from a face set of a consenting identity")
    record = require_consent(ws, src_identity)
    return Provenance(ws, record.record_hash, src_identity)
