"""The workspace's signing identity for content credentials: a private key and certificate chain.

``doppel init`` creates, in ``WS/keys/``:

- ``ca.pem``: a workspace certificate authority (EC P-256, ``BasicConstraints ca=True``, key usage
  keyCertSign + cRLSign). It is the *trust anchor*: ``doppel verify --workspace WS`` trusts
  outputs signed under it.
- ``ca.key.pem``: the CA's private key (mode 0600). Only needed to issue a new signer certificate;
  a careful studio moves it offline.
- ``signer.pem``: the signing chain, end-entity certificate first then the CA (EC P-256,
  digitalSignature, extended key usage emailProtection, subject/authority key identifiers, as the
  C2PA SDK requires of a signer).
- ``signer.key.pem``: the end-entity private key (PKCS#8 PEM, mode 0600).

How a studio substitutes its own identity: replace ``signer.pem`` with its end-entity certificate
followed by any intermediates (PEM), ``signer.key.pem`` with the matching private key (PKCS#8 PEM;
EC P-256/P-384/P-521, Ed25519 or RSA are accepted and the signing algorithm follows the key), and
``ca.pem`` with its root (the anchor verify should trust); delete ``ca.key.pem``. The certificate
must satisfy the C2PA profile (digitalSignature key usage, an extended key usage such as
emailProtection or documentSigning, not a CA). A certificate chaining to a root on the C2PA trust
list is reported as trusted by any verifier; the self-made workspace CA is trusted only where it is
configured as an anchor.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from doppel.core.errors import WorkspaceError
from doppel.io.atomic import write_bytes_atomic

CA_CERT = "ca.pem"
CA_KEY = "ca.key.pem"
SIGNER_CERT = "signer.pem"
SIGNER_KEY = "signer.key.pem"
README = "README.txt"

_README_TEXT = """This folder holds the workspace's content-credentials signing identity (made by `doppel init`).

signer.pem       end-entity certificate, then the issuing CA (PEM chain): signs every output's C2PA manifest
signer.key.pem   the end-entity private key (PKCS#8 PEM) - keep private
ca.pem           the workspace CA: the trust anchor `doppel verify --workspace` uses
ca.key.pem       the CA private key: only needed to issue a new signer certificate; move it offline

To sign with your studio's identity instead: replace signer.pem (your certificate followed by any
intermediates) and signer.key.pem (its private key), put your root certificate in ca.pem, and delete
ca.key.pem. The certificate needs digitalSignature key usage and an extended key usage such as
emailProtection or documentSigning (the C2PA certificate profile).
"""


@dataclass(frozen=True)
class SigningIdentity:
    """What the signer needs: chain PEM (end entity first), private key PEM, C2PA algorithm, anchor PEM."""

    chain_pem: bytes
    key_pem: bytes
    alg: str
    anchor_pem: bytes | None
    folder: Path


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def create_workspace_keys(folder: Path, *, label: str = "doppel workspace") -> Path:
    """Create a fresh CA and signer in ``folder`` (which must hold none yet). Returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    existing = [n for n in (CA_CERT, CA_KEY, SIGNER_CERT, SIGNER_KEY) if (folder / n).exists()]
    if existing:
        raise WorkspaceError(f"already holds signing files ({', '.join(existing)}); not overwriting them",
                             path=folder)
    now = dt.datetime.now(dt.UTC)
    org = f"{label} ({os.urandom(4).hex()})"  # distinguishes workspaces made by the same studio
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("doppel workspace CA", org))
          .issuer_name(_name("doppel workspace CA", org)).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_usage(sign=False, ca=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    ee_key = ec.generate_private_key(ec.SECP256R1())
    ee = (x509.CertificateBuilder().subject_name(_name("doppel signer", org)).issuer_name(ca.subject)
          .public_key(ee_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1825))
          .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
          .add_extension(_usage(sign=True, ca=False), critical=True)
          .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ee_key.public_key()), critical=False)
          .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    write_bytes_atomic(folder / CA_KEY, _pem_key(ca_key))
    write_bytes_atomic(folder / SIGNER_KEY, _pem_key(ee_key))
    write_bytes_atomic(folder / CA_CERT, ca_pem)
    write_bytes_atomic(folder / SIGNER_CERT, ee.public_bytes(serialization.Encoding.PEM) + ca_pem)
    write_bytes_atomic(folder / README, _README_TEXT.encode())
    for name in (CA_CERT, SIGNER_CERT, README):
        os.chmod(folder / name, 0o644)  # public; the private keys keep mkstemp's 0600
    return folder


def _alg_for(key: object, path: Path) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}.get(key.curve.name) or _bad(
            f"unsupported EC curve {key.curve.name}; use P-256, P-384 or P-521", path)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    return _bad(f"unsupported key type {type(key).__name__}", path)


def _bad(message: str, path: Path) -> str:
    raise WorkspaceError(message, path=path)


def load_signing_identity(folder: Path) -> SigningIdentity:
    """Read and check ``WS/keys``: the chain, the key, that they match, and the anchor if present."""
    folder = Path(folder)
    chain_path, key_path = folder / SIGNER_CERT, folder / SIGNER_KEY
    for p in (chain_path, key_path):
        if not p.is_file():
            raise WorkspaceError(f"missing {p.name}: the workspace has no signing identity; doppel init creates one "
                                 f"(see {folder / README} to use your own)", path=folder)
    chain_pem, key_pem = chain_path.read_bytes(), key_path.read_bytes()
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise WorkspaceError("is not a PEM certificate chain", path=chain_path) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise WorkspaceError("is not an unencrypted PEM private key", path=key_path) from None
    pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert_pub = certs[0].public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    if pub != cert_pub:
        raise WorkspaceError(f"{key_path.name} does not match the first certificate in {chain_path.name}",
                             path=folder)
    anchor = (folder / CA_CERT).read_bytes() if (folder / CA_CERT).is_file() else None
    return SigningIdentity(chain_pem, key_pem, _alg_for(key, key_path), anchor, folder)


CACHE_KEY = "cache.key"


def cache_key(folder: Path) -> bytes:
    """The workspace's 256-bit key for the inference cache (``keys/cache.key``, made on first use,
    readable by its owner only)."""
    path = Path(folder) / CACHE_KEY
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, os.urandom(32))
        os.chmod(path, 0o600)
    key = path.read_bytes()
    if len(key) != 32:
        raise WorkspaceError("is not a 32-byte cache key; delete it (and WS/renders/cache) to start afresh",
                             path=path)
    return key


def ensure_workspace_keys(folder: Path) -> SigningIdentity:
    """Load the workspace's signing identity, creating one first if the folder holds none at all."""
    folder = Path(folder)
    if not any((folder / n).exists() for n in (CA_CERT, CA_KEY, SIGNER_CERT, SIGNER_KEY)):
        create_workspace_keys(folder)
    return load_signing_identity(folder)
