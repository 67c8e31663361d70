"""C2PA content credentials: the workspace signing identity, signing an MP4, reading it back honestly."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import make_clip, noise_frames
from doppel.core.errors import InputError, WorkspaceError
from doppel.provenance.credentials import RenderCredentials, embed_credentials, read_credentials
from doppel.provenance.keys import SIGNER_KEY, create_workspace_keys, load_signing_identity
from doppel.store import Workspace
from doppel.workflow.workspace import create_workspace

HASH = "ab" * 32


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    with create_workspace(tmp_path / "ws") as w:
        yield w


def _info(**kw: object) -> RenderCredentials:
    base: dict[str, object] = {"render_uid": "r-42", "model_name": "alice_to_bob", "consent_hashes": [HASH],
                               "model_id": 7, "watermark_payload": 0xDEADBEEF,
                               "actions": [("c2pa.edited", "face replaced")]}
    base.update(kw)
    return RenderCredentials(**base)  # type: ignore[arg-type]


def _signed(ws: Workspace, tmp_path: Path) -> Path:
    video = make_clip(tmp_path / "out.mp4", noise_frames(12))
    embed_credentials(ws.keys_dir(), video, _info())
    return video


def test_init_creates_signing_identity(ws: Workspace) -> None:
    keys = ws.root / "keys"
    ident = load_signing_identity(keys)
    assert ident.alg == "es256" and ident.anchor_pem is not None
    assert ident.chain_pem.count(b"BEGIN CERTIFICATE") == 2
    assert (keys / SIGNER_KEY).stat().st_mode & 0o077 == 0  # private key is private
    with pytest.raises(WorkspaceError, match="not overwriting"):
        create_workspace_keys(keys)


def test_signed_mp4_has_present_valid_credentials(ws: Workspace, tmp_path: Path) -> None:
    video = _signed(ws, tmp_path)
    assert video.with_suffix(".c2pa").is_file()
    rep = read_credentials(video)
    assert rep.present and rep.embedded and rep.valid and not rep.trusted  # honest: nobody anchors this CA
    assert rep.failures == ["signingCredential.untrusted"]
    assert rep.source_type == "compositeWithTrainedAlgorithmicMedia"
    assert rep.render_id == "r-42" and rep.model == "alice_to_bob" and rep.consent_hashes == [HASH]
    assert rep.watermark_payload == 0xDEADBEEF and rep.actions == ["c2pa.created", "c2pa.edited"]
    trusted = read_credentials(video, anchors=(ws.root / "keys" / "ca.pem").read_bytes())
    assert trusted.valid and trusted.trusted and trusted.state == "Trusted"
    # The signed file still plays: every frame decodes.
    with av.open(str(video)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12


def test_another_workspace_ca_does_not_make_it_trusted(ws: Workspace, tmp_path: Path) -> None:
    video = _signed(ws, tmp_path)
    other = create_workspace_keys(tmp_path / "otherkeys")
    rep = read_credentials(video, anchors=(other / "ca.pem").read_bytes())
    assert rep.valid and not rep.trusted


def test_tampered_and_stripped(ws: Workspace, tmp_path: Path) -> None:
    video = _signed(ws, tmp_path)
    data = bytearray(video.read_bytes())
    data[data.find(b"mdat") + 400] ^= 0xFF
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    rep = read_credentials(tampered)
    assert rep.present and not rep.valid and not rep.trusted
    assert any("mismatch" in f for f in rep.failures)
    # Remuxing drops the manifest box; with no sidecar beside it, nothing is found (and nothing raises).
    stripped = tmp_path / "stripped.mp4"
    with av.open(str(video)) as src, av.open(str(stripped), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    rep = read_credentials(stripped)
    assert not rep.present and "no content credentials embedded and no sidecar" in (rep.error or "")
    # The sidecar still names the render, but it no longer matches the remuxed file.
    shutil.copy(video.with_suffix(".c2pa"), stripped.with_suffix(".c2pa"))
    rep = read_credentials(stripped)
    assert rep.present and not rep.embedded and rep.sidecar and not rep.valid and rep.render_id == "r-42"


def test_bad_inputs_never_raise(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    rep = read_credentials(junk)
    assert not rep.present and rep.error and "could not be read" in rep.error
    assert read_credentials(tmp_path / "missing.mp4").error == "no such file"
    mkv = tmp_path / "a.mkv"
    mkv.write_bytes(b"x")
    assert "not read from .mkv" in (read_credentials(mkv).error or "")


def test_embed_refuses_what_it_cannot_sign(ws: Workspace, tmp_path: Path) -> None:
    video = make_clip(tmp_path / "out.mp4", noise_frames(4), audio=False)
    with pytest.raises(InputError, match="consent-record hash"):
        embed_credentials(ws.keys_dir(), video, _info(consent_hashes=[]))
    mkv = tmp_path / "out.mkv"
    shutil.copy(video, mkv)
    with pytest.raises(InputError, match="cannot be embedded in .mkv"):
        embed_credentials(ws.keys_dir(), mkv, _info())
    before = video.read_bytes()
    # A studio key that does not match its certificate is caught before anything is written.
    other = create_workspace_keys(tmp_path / "other")
    shutil.copy(other / SIGNER_KEY, ws.root / "keys" / SIGNER_KEY)
    with pytest.raises(WorkspaceError, match="does not match"):
        embed_credentials(ws.keys_dir(), video, _info())
    assert video.read_bytes() == before and not video.with_suffix(".c2pa").exists()


def test_signs_png_too(ws: Workspace, tmp_path: Path) -> None:
    import cv2

    png = tmp_path / "still.png"
    cv2.imwrite(str(png), np.full((32, 48, 3), 120, np.uint8))
    embed_credentials(ws.keys_dir(), png, _info())
    rep = read_credentials(png)
    assert rep.present and rep.valid and rep.render_id == "r-42"
