"""`doppel verify`'s logic: read a file's watermark and content credentials and say what was found.

:func:`verify_file` never raises on bad input (not a media file, truncated, stripped metadata):
every problem becomes part of the report, with what could and could not be checked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from doppel.core.errors import DoppelError, MediaError
from doppel.core.progress import ProgressFn, no_progress
from doppel.io.video import media_exists, probe, read_frames, sequence_files
from doppel.provenance.credentials import CredentialsReport, read_credentials
from doppel.provenance.manifest import check_manifest
from doppel.provenance.watermark import Z_PRESENCE, Z_THRESHOLD, WatermarkReport, detect

log = logging.getLogger(__name__)

MAX_FRAMES = 90
"""Frames read for watermark detection, spread evenly over a clip (more read more reliably)."""


@dataclass
class VerifyReport:
    file: str
    readable: bool = False
    kind: str | None = None
    error: str | None = None
    watermark: dict[str, Any] = field(default_factory=dict)
    credentials: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    workspace: dict[str, Any] | None = None
    findings: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """``marked`` (a doppel watermark and/or intact credentials, none broken), ``unmarked`` (nothing
        found, or credentials that were tampered with), or ``unreadable``."""
        cred, man = self.credentials, self.manifest
        covered = bool(man.get("valid") and man.get("listed") and man.get("intact"))
        if (cred.get("present") and not cred.get("valid")) or (man.get("listed") and not covered):
            return "unmarked"  # credentials or a manifest that no longer match the file: tampered with
        if not self.readable and not cred.get("present") and not covered:
            return "unreadable"
        return "marked" if self.watermark.get("detected") or cred.get("valid") or covered else "unmarked"

    @property
    def exit_code(self) -> int:
        """What ``doppel verify`` exits with: 0 marked, 1 unmarked, 2 unreadable."""
        return {"marked": 0, "unmarked": 1, "unreadable": 2}[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "readable": self.readable, "kind": self.kind, "error": self.error,
                "verdict": self.verdict,
                "watermark": self.watermark, "credentials": self.credentials, "manifest": self.manifest,
                "workspace": self.workspace,
                "findings": self.findings, "not_checked": self.not_checked}


def _frames(path: Path, max_frames: int, report: VerifyReport, progress: ProgressFn) -> list[np.ndarray]:
    """Up to ``max_frames`` frames spread over the clip; a damaged file gives what decoded before the damage."""
    every = 1
    try:
        info = probe(path)
        report.kind = info.kind
        every = max(1, info.frame_count // max_frames)
    except MediaError as exc:
        if "damaged or truncated" not in exc.message:
            raise
        report.kind = "video"
        report.findings.append("the file is damaged or truncated; read the frames that decode")
    frames: list[np.ndarray] = []
    try:
        for frame in islice(read_frames(path, every=every), max_frames):
            frames.append(frame.image)
            progress(len(frames), max_frames)
    except MediaError as exc:
        if not frames:
            raise
        report.findings.append(f"decoding stopped after {len(frames)} sampled frames ({exc.message})")
    return frames


def verify_file(path: Path, *, workspace: Path | None = None, max_frames: int = MAX_FRAMES,
                progress: ProgressFn = no_progress) -> VerifyReport:
    """Check ``path`` (any video or image, or an image sequence: a folder or a ``%06d``/``####`` pattern) for
    doppel's watermark and content credentials (embedded C2PA, its sidecar, or a signed manifest)."""
    path = Path(path)
    report = VerifyReport(str(path))
    if not media_exists(path):
        report.error = "no such file"
        report.not_checked += ["watermark", "credentials"]
        return report
    seq = None if path.is_file() else sequence_files(path)
    if seq is not None and not seq[0]:
        report.error = "is a folder with no images; give a video, an image or an image sequence"
        report.not_checked += ["watermark", "credentials"]
        return report
    # -- watermark ---------------------------------------------------------------------------------
    wm: WatermarkReport | None = None
    try:
        frames = _frames(path, max_frames, report, progress)
        report.readable = True
        wm = detect(frames, candidates=_workspace_payloads(workspace))
    except DoppelError as exc:
        report.error = exc.message.removeprefix(f"{path}: ")
        report.not_checked.append("watermark (the file is not a readable video or image)")
    if wm is not None:
        report.watermark = wm.to_dict() | {"checked": True, "threshold_z": Z_THRESHOLD, "presence_z": Z_PRESENCE}
        if wm.detected and wm.method == "candidates":
            report.findings.append(f"doppel watermark of one of the workspace's renders found in {wm.frames_checked} "
                                   f"frames: payload {wm.payload:#010x}, too weak to read blind (mark z "
                                   f"{wm.mark_z:.1f}) but matched among {wm.candidates} renders' marks (z "
                                   f"{wm.candidate_z:.1f}), false-positive bound {wm.false_positive_bound:.1e}")
        elif wm.detected and wm.payload is None:
            report.findings.append(f"doppel watermark found in {wm.frames_checked} frames (mark z {wm.mark_z:.1f}, "
                                   f"false-positive bound {wm.false_positive_bound:.1e}), its payload too damaged to "
                                   "read: made by doppel, but which render cannot be told from the mark"
                                   + ("" if workspace is None else " or matched among the workspace's renders"))
        elif wm.detected:
            report.findings.append(f"doppel watermark found in {wm.frames_checked} frames: payload {wm.payload:#010x}, "
                                   f"false-positive bound {wm.false_positive_bound:.1e} (mark z {wm.mark_z:.1f})")
        else:
            if wm.crc_ok:
                why = f"mark z {wm.mark_z:.1f} below {Z_THRESHOLD}"
            elif wm.layout == 2:
                why = f"mark z {wm.mark_z:.1f}: below {Z_PRESENCE} for the mark alone, and no payload decoded"
            else:
                why = "CRC did not match"
            report.findings.append(f"no doppel watermark found in {wm.frames_checked} frames ({why})")
            if wm.frames_checked < 10 and report.kind != "image":
                report.findings.append("few frames were readable; a watermark may be missed on so little footage")
    else:
        report.watermark = {"checked": False, "detected": False, "payload": None, "confidence": 0.0,
                            "frames_checked": 0}
    # -- credentials --------------------------------------------------------------------------------
    anchors = None
    if workspace is not None:
        ca = Path(workspace) / "keys" / "ca.pem"
        anchors = ca.read_bytes() if ca.is_file() else None
        if anchors is None:
            report.not_checked.append(f"trust in the workspace's CA ({ca} not found)")
    if seq is not None:  # a sequence: its frames' signed manifest stands for its credentials
        return _sequence_credentials(report, seq[0], anchors, workspace, wm)
    cred: CredentialsReport = read_credentials(path, anchors=anchors)
    report.credentials = cred.to_dict()
    if cred.present:
        where = "embedded" if cred.embedded else f"in the sidecar {cred.sidecar}"
        state = ("intact and signed by a trusted signer" if cred.trusted else
                 "intact, signer not on any configured trust list" if cred.valid else
                 f"NOT intact ({', '.join(f for f in cred.failures if f != 'signingCredential.untrusted')})")
        report.findings.append(f"content credentials {where}: {state}; source type {cred.source_type}, "
                               f"render {cred.render_id}, model {cred.model}")
        if not cred.trusted and anchors is None:
            report.not_checked.append("trust in the signer (pass --workspace WS to trust that workspace's CA)")
        if wm is not None and wm.payload is not None and cred.watermark_payload is not None \
                and cred.watermark_payload != wm.payload:
            report.findings.append("the watermark payload does not match the one the credentials name")
    else:
        report.findings.append(f"no content credentials ({cred.error})")
    # -- the signed manifest of a folder of outputs (layers, image sequences) -----------------------
    man = check_manifest(path, anchors=anchors)
    report.manifest = man.to_dict()
    if man.present:
        state = ("lists this file, unchanged" if man.covers else man.error or "does not cover this file")
        trust = " (signer trusted)" if man.trusted else ""
        report.findings.append(f"signed manifest {man.path}{trust}: {state}; render {man.render_id}")
    # -- workspace -----------------------------------------------------------------------------------
    if workspace is not None:
        report.workspace = _lookup(Path(workspace), wm, cred, report)
    return report


def _sequence_credentials(report: VerifyReport, files: list[Path], anchors: bytes | None,
                          workspace: Path | None, wm: WatermarkReport | None) -> VerifyReport:
    """A sequence is covered when every frame is listed, unchanged, in a valid signed manifest."""
    checks = [check_manifest(f, anchors=anchors) for f in files]
    covered = [c for c in checks if c.covers]
    first = checks[0]
    report.manifest = {**first.to_dict(), "listed": all(c.listed for c in checks),
                       "intact": len(covered) == len(checks), "frames": len(checks), "frames_covered": len(covered)}
    report.credentials = {"present": False, "valid": False, "error": "see the manifest (an image sequence)"}
    if first.present:
        report.findings.append(f"signed manifest {first.path}: {len(covered)} of {len(checks)} frames listed "
                               f"unchanged; render {first.render_id}")
    else:
        report.findings.append("no signed manifest beside the sequence")
    if workspace is not None:
        report.workspace = _lookup(Path(workspace), wm, CredentialsReport(render_id=first.render_id), report)
    return report


def _workspace_payloads(root: Path | None) -> list[int]:
    """The watermark payloads of a workspace's renders (none when there is no workspace or it does not
    open: the lookup after detection reports why)."""
    if root is None:
        return []
    from doppel.store import Workspace

    try:
        ws = Workspace.open(Path(root))
    except DoppelError:
        return []
    with ws:
        return [r.watermark_payload for r in ws.renders.all() if r.watermark_payload is not None]


def payload_text(watermark: dict[str, Any]) -> str:
    """How a report names the payload of a found mark: its hex, or that it could not be read."""
    payload = watermark.get("payload")
    return f"payload {payload:#010x}" if payload is not None else "payload unreadable"


def _lookup(root: Path, wm: WatermarkReport | None, cred: CredentialsReport, report: VerifyReport) -> dict[str, Any]:
    from doppel.store import Workspace

    try:
        ws = Workspace.open(root)
    except DoppelError as exc:
        report.not_checked.append(f"the workspace ({exc.message})")
        return {"opened": False, "error": exc.message}
    with ws:
        rows = ws.renders.matching(payload=wm.payload if wm is not None else None,
                                   uid=cred.render_id or None)
        renders = {r.uid: {"uid": r.uid, "output_path": r.output_path, "status": r.status,
                           "created_at": r.created_at, "consent_hash": r.consent_hash,
                           "watermark_payload": r.watermark_payload} for r in rows}
        consents = [{"record_hash": h, "in_workspace": ws.consents.has_hash(h)} for h in cred.consent_hashes]
    if renders:
        report.findings.append(f"render(s) {', '.join(renders)} found in workspace {root}")
    elif (wm is not None and wm.detected) or cred.render_id:
        report.findings.append(f"no matching render in workspace {root}")
    return {"opened": True, "renders": list(renders.values()), "consents": consents}
