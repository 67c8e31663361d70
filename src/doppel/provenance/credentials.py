"""C2PA content credentials on every output: embedded in the file and written as a sidecar.

API (what merge and verify call)::

    info = RenderCredentials(render_uid=uid, model_name="alice_to_bob", model_id=3,
                             consent_hashes=[record.record_hash], watermark_payload=render_payload(uid),
                             actions=[("c2pa.edited", "face replaced with model alice_to_bob")])
    sidecar = embed_credentials(ws.keys_dir(), Path("out.mp4"), info)   # signs out.mp4 in place, writes out.c2pa
    report = read_credentials(Path("out.mp4"), anchors=ws_anchor_pem)   # never raises on bad input

The manifest holds a ``c2pa.actions`` assertion whose first action is ``c2pa.created`` with digital
source type ``compositeWithTrainedAlgorithmicMedia`` (IPTC), followed by the render's own actions,
and a doppel assertion ``org.doppel.render`` with the render id, model, consent-record hashes,
watermark payload and doppel version. It is signed with the workspace's identity (see
:mod:`doppel.provenance.keys`) through c2pa-python.

Reading reports two things separately, and never calls an untrusted signer trusted:

- **intact** (``valid``): the claim signature verifies and every hash matches the file (nothing was
  changed after signing);
- **trusted**: the signing certificate chains to a trust anchor: one on the SDK's list, or the
  workspace's own CA when ``anchors`` is given (``doppel verify --workspace WS``).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from doppel import __version__
from doppel.core.errors import InputError, MediaError
from doppel.io.atomic import atomic_path, write_bytes_atomic
from doppel.provenance.keys import ensure_workspace_keys

log = logging.getLogger(__name__)

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
ASSERTION = "org.doppel.render"
SIDECAR_SUFFIX = ".c2pa"
MIME_TYPES: dict[str, str] = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
    ".tif": "image/tiff", ".tiff": "image/tiff", ".avi": "video/x-msvideo",
}
"""Output formats a C2PA manifest can be embedded in (by extension)."""


@dataclass(frozen=True)
class RenderCredentials:
    """What an output's credentials say about how it was made."""

    render_uid: str
    model_name: str
    consent_hashes: list[str]
    model_id: int | None = None
    watermark_payload: int | None = None
    actions: list[tuple[str, str]] = field(default_factory=list)
    """Extra C2PA actions after ``c2pa.created``: (action label, description), e.g. ("c2pa.edited", "...")."""
    title: str | None = None


@dataclass
class CredentialsReport:
    """What reading a file's credentials found. ``error`` explains anything that could not be checked."""

    present: bool = False
    embedded: bool = False
    sidecar: str | None = None
    valid: bool = False            # intact: signature verifies and hashes match
    trusted: bool = False          # signer chains to a configured trust anchor
    state: str | None = None       # the SDK's validation state: Invalid, Valid or Trusted
    source_type: str | None = None
    render_id: str | None = None
    model: str | None = None
    consent_hashes: list[str] = field(default_factory=list)
    watermark_payload: int | None = None
    signer: str | None = None
    issuer: str | None = None
    actions: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mime_type(path: Path) -> str:
    mime = MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        raise InputError(f"content credentials cannot be embedded in {path.suffix or 'extensionless'} files; "
                         f"write one of {', '.join(sorted(MIME_TYPES))}", path=path)
    return mime


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(SIDECAR_SUFFIX)


def manifest_definition(info: RenderCredentials, title: str) -> dict[str, Any]:
    actions: list[dict[str, Any]] = [{
        "action": "c2pa.created", "digitalSourceType": SOURCE_TYPE,
        "softwareAgent": {"name": "doppel", "version": __version__},
        "parameters": {"description": f"face replacement rendered by doppel with model {info.model_name}"},
    }]
    for label, description in info.actions:
        actions.append({"action": label, "softwareAgent": {"name": "doppel", "version": __version__},
                        "parameters": {"description": description}})
    render: dict[str, Any] = {"render_id": info.render_uid, "model": info.model_name, "model_id": info.model_id,
                              "consent_record_hashes": list(info.consent_hashes),
                              "watermark_payload": info.watermark_payload, "doppel_version": __version__}
    return {
        "claim_generator_info": [{"name": "doppel", "version": __version__}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": actions}},
            {"label": ASSERTION, "data": render},
        ],
    }


def embed_credentials(keys_dir: Path, video_path: Path, info: RenderCredentials, *, sidecar: bool = True) -> Path:
    """Sign ``video_path`` (a video or image) in place (temp + rename) with the signing identity in
    ``keys_dir`` (a workspace's ``keys/``, created if it holds nothing); write the sidecar unless
    ``sidecar`` is False. Returns the sidecar path (``video_path`` with suffix ``.c2pa``), written or not.
    """
    import c2pa

    video_path = Path(video_path)
    if not video_path.is_file():
        raise InputError("no such file to sign", path=video_path)
    if not info.consent_hashes:
        raise InputError("content credentials need the consent-record hash of the source identity", path=video_path)
    mime = mime_type(video_path)
    identity = ensure_workspace_keys(Path(keys_dir))
    definition = manifest_definition(info, info.title or video_path.name)
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}},
                                      "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}})
    signer_info = c2pa.C2paSignerInfo(alg=identity.alg.encode(), sign_cert=identity.chain_pem,
                                      private_key=identity.key_pem, ta_url=None)
    try:
        with c2pa.Signer.from_info(signer_info) as signer, c2pa.Builder(definition, context=context) as builder, \
                atomic_path(video_path) as tmp, open(video_path, "rb") as src, open(tmp, "w+b") as dst:
            manifest = builder.sign(signer, mime, src, dst)
            dst.flush()
            os.fsync(dst.fileno())
            os.chmod(tmp, stat.S_IMODE(os.stat(video_path).st_mode))
    except c2pa.C2paError as exc:
        raise MediaError(f"could not sign content credentials ({exc})", path=video_path) from None
    side = sidecar_path(video_path)
    if sidecar:
        write_bytes_atomic(side, manifest)
    log.info("signed %s (%d-byte manifest, alg %s)", video_path, len(manifest), identity.alg)
    return side


def _reader_context(anchors: bytes | str | None) -> Any:
    import c2pa

    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if anchors:
        settings["trust"] = {"user_anchors": anchors.decode() if isinstance(anchors, bytes) else anchors}
    return c2pa.Context.from_dict(settings)


def read_credentials(path: Path, *, anchors: bytes | str | None = None,
                     sidecar: Path | None = None) -> CredentialsReport:
    """Read and validate a file's C2PA manifest (embedded, else the sidecar beside it). Never raises on
    bad input: problems go to ``report.error``."""
    import c2pa

    path = Path(path)
    report = CredentialsReport()
    if not path.is_file():
        report.error = "no such file"
        return report
    mime = MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        report.error = f"C2PA manifests are not read from {path.suffix or 'extensionless'} files"
        return report
    side = sidecar or sidecar_path(path)
    context = _reader_context(anchors)
    reader = None
    try:
        with open(path, "rb") as fh:
            reader = c2pa.Reader.try_create(mime, fh, None, context)
            if reader is not None:
                report.embedded = True
            elif side.is_file():
                fh.seek(0)
                reader = c2pa.Reader(mime, fh, side.read_bytes(), context=context)
                report.sidecar = str(side)
            if reader is None:
                report.error = "no content credentials embedded" + ("" if side.is_file() else " and no sidecar")
                return report
            text = reader.json()
    except c2pa.C2paError as exc:
        report.error = f"credentials could not be read ({str(exc).splitlines()[0][:200]})"
        return report
    except OSError as exc:
        report.error = f"cannot read the file ({exc.strerror})"
        return report
    finally:
        if reader is not None:
            reader.close()
    _fill(report, json.loads(text))
    return report


def _fill(report: CredentialsReport, store: dict[str, Any]) -> None:
    report.present = True
    report.state = store.get("validation_state")
    report.valid = report.state in ("Valid", "Trusted")
    report.trusted = report.state == "Trusted"
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    report.failures = [entry.get("code", "?") for entry in results.get("failure", [])]
    manifest = (store.get("manifests") or {}).get(store.get("active_manifest") or "", {})
    sig = manifest.get("signature_info") or {}
    report.signer, report.issuer = sig.get("common_name"), sig.get("issuer")
    for assertion in manifest.get("assertions", []):
        label, data = assertion.get("label", ""), assertion.get("data") or {}
        if label.startswith("c2pa.actions"):
            for action in data.get("actions", []):
                report.actions.append(action.get("action", "?"))
                if action.get("digitalSourceType") and report.source_type is None:
                    report.source_type = str(action["digitalSourceType"]).rsplit("/", 1)[-1]
        elif label == ASSERTION:
            report.render_id = data.get("render_id")
            report.model = data.get("model")
            report.consent_hashes = list(data.get("consent_record_hashes") or [])
            payload = data.get("watermark_payload")
            report.watermark_payload = int(payload) if isinstance(payload, int) else None
