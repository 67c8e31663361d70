"""A signed manifest for a folder of outputs (compositing layers, image sequences), and its check.

Formats that cannot embed a C2PA manifest (JSON transforms, EXR, DPX) and folders of many files get
one ``doppel-manifest.json`` beside them: the render it came from (uid, watermark payload, consent
hashes, model) and the SHA-256 of every file, signed with the workspace's signing identity (the same
key and certificate chain as the C2PA credentials, ``WS/keys/``). ``doppel verify FILE`` finds the
manifest next to ``FILE``, checks the signature, that ``FILE`` is listed and that its bytes are the
ones that were signed, and, given the workspace's CA, that the signer chains to it.

Layout: ``{"manifest": {...}, "alg": ..., "chain_pem": ..., "signature": base64}``; the signature is
over the canonical JSON of ``manifest`` (sorted keys, no whitespace, UTF-8).
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from doppel.core.clock import now
from doppel.core.hashing import file_sha256
from doppel.io.atomic import write_text_atomic
from doppel.provenance.keys import ensure_workspace_keys

MANIFEST_NAME = "doppel-manifest.json"
VERSION = 1


def canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sign(key_pem: bytes, data: bytes) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH), hashes.SHA256())
    raise ValueError(f"unsupported signing key type {type(key).__name__}")


def _check(cert: x509.Certificate, signature: bytes, data: bytes) -> None:
    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(signature, data)
    elif isinstance(pub, rsa.RSAPublicKey):
        pub.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH),
                   hashes.SHA256())
    else:
        raise InvalidSignature(f"unsupported public key type {type(pub).__name__}")


def write_manifest(folder: Path, files: Iterable[Path], keys_dir: Path, render: dict[str, Any], *,
                   name: str = MANIFEST_NAME) -> Path:
    """Sign a manifest of ``files`` (all inside ``folder``) for the render described by ``render`` (uid,
    watermark payload, consent hashes, model) and write it atomically as ``folder/name`` (by default the
    folder's ``doppel-manifest.json``; ``FILE.manifest.json`` for a single video that cannot embed C2PA)."""
    identity = ensure_workspace_keys(keys_dir)
    listed = {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(set(files)) if p.is_file()}
    manifest = {"doppel_manifest": VERSION, "created_at": now(), **render, "files": listed}
    signature = _sign(identity.key_pem, canonical(manifest))
    doc = {"manifest": manifest, "alg": identity.alg, "chain_pem": identity.chain_pem.decode("ascii"),
           "signature": base64.b64encode(signature).decode("ascii")}
    path = folder / name
    write_text_atomic(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


@dataclass
class ManifestReport:
    """What the folder manifest next to a file says about it."""

    present: bool = False
    path: str | None = None
    valid: bool = False          # the signature checks out against the certificate in the manifest
    trusted: bool = False        # ... and that certificate chains to the given anchor (the workspace CA)
    listed: bool = False         # the file is one the manifest names
    intact: bool = False         # ... and its bytes are the ones that were signed
    render_id: str | None = None
    watermark_payload: int | None = None
    consent_hashes: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def covers(self) -> bool:
        """The file is listed, unchanged, in a manifest with a valid signature."""
        return self.valid and self.listed and self.intact


def _chains_to(chain: list[x509.Certificate], anchor_pem: bytes) -> bool:
    anchors = x509.load_pem_x509_certificates(anchor_pem)
    try:
        for child, parent in itertools.pairwise(chain):
            child.verify_directly_issued_by(parent)
        last = chain[-1]
        return any(last.fingerprint(hashes.SHA256()) == a.fingerprint(hashes.SHA256()) or _issued_by(last, a)
                   for a in anchors)
    except (ValueError, TypeError, InvalidSignature):
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_manifest(path: Path, *, anchors: bytes | None = None) -> ManifestReport:
    """Check ``path`` against its manifest: ``FILE.manifest.json`` beside it, else the folder's
    ``doppel-manifest.json`` (never raises on bad input)."""
    path = Path(path)
    report = ManifestReport()
    if path.name == MANIFEST_NAME or path.name.endswith(".manifest.json"):
        return report
    found = next((p for p in (path.with_name(path.name + ".manifest.json"), path.parent / MANIFEST_NAME)
                  if p.is_file()), None)
    if found is None:
        return report
    report.present, report.path = True, str(found)
    try:
        doc = json.loads(found.read_text())
        manifest = doc["manifest"]
        chain = x509.load_pem_x509_certificates(doc["chain_pem"].encode("ascii"))
        _check(chain[0], base64.b64decode(doc["signature"]), canonical(manifest))
    except (OSError, ValueError, KeyError, TypeError, InvalidSignature, UnicodeError) as exc:
        report.error = f"manifest signature does not check out ({type(exc).__name__})"
        return report
    report.valid = True
    report.trusted = anchors is not None and _chains_to(chain, anchors)
    report.render_id = manifest.get("render_uid")
    report.watermark_payload = manifest.get("watermark_payload")
    report.consent_hashes = list(manifest.get("consent_hashes", []))
    digest = manifest.get("files", {}).get(path.name)
    report.listed = digest is not None
    report.intact = report.listed and file_sha256(path) == digest
    if not report.listed:
        report.error = "the manifest beside it does not list this file"
    elif not report.intact:
        report.error = "the file was changed after it was signed"
    return report
