"""Where a merge's frames go: a video file or an image sequence, each with its provenance.

A video is written to a temporary name and renamed once whole, with content credentials embedded
(MP4/MOV; a sidecar beside it too) or, in containers C2PA cannot embed in (MKV, MXF), a signed manifest
beside it. An image sequence is written frame by frame (each file atomically), each frame carrying the
watermark like every frame merge writes, PNG/TIFF frames with embedded credentials, and the folder a
signed manifest over every frame. Frames are written at 16 bits where the render is deep
(``WorkItem.output16``), else at 8.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from doppel.io.atomic import atomic_path
from doppel.io.formats import OutputSpec
from doppel.io.sequence import SequenceWriter
from doppel.io.video import VideoInfo
from doppel.io.writer import VideoWriter
from doppel.merge.provenance import Provenance, place_sidecar
from doppel.merge.stages import WorkItem
from doppel.provenance.credentials import MIME_TYPES

SIGNED_IMAGES = (".png", ".tif", ".tiff")  # sequence frames that embed C2PA credentials


@dataclass(frozen=True)
class Encode:
    """Where the merged frames go: ``output`` (a :class:`OutputSpec`: a codec in a container, or an image
    sequence), with ``input``'s audio (videos), at this quality, numbered from ``start`` (sequences)."""

    input: Path
    output: OutputSpec
    crf: int = 18
    preset: str = "veryfast"
    start: int = 0


class Sink(Protocol):
    def write(self, item: WorkItem) -> None: ...

    def finish(self, provenance: Provenance, *, model_name: str, model_id: int | None, frames: int,
               swapped: int) -> dict[str, Any]: ...


class VideoSink:
    def __init__(self, encode: Encode, info: VideoInfo, stack: ExitStack) -> None:
        self.encode, self.info = encode, info
        self.final = encode.output.path
        self.tmp = stack.enter_context(atomic_path(self.final))
        self.writer = stack.enter_context(VideoWriter(
            self.tmp, width=info.width, height=info.height, fps=info.rate, time_base=info.time_base,
            codec=encode.output.codec or "h264", crf=encode.crf, preset=encode.preset, audio_from=encode.input,
            colour=info.colour, timecode=info.timecode, sample_aspect=info.sample_aspect))

    def write(self, item: WorkItem) -> None:
        image = item.output16 if item.output16 is not None else item.output
        assert image is not None
        self.writer.write(image, item.frame.pts if self.info.time_base is not None else None)

    def finish(self, provenance: Provenance, *, model_name: str, model_id: int | None, frames: int,
               swapped: int) -> dict[str, Any]:
        """Close the encoder, sign, and rename into place (the ExitStack renames the file)."""
        self.writer.close()
        if self.final.suffix.lower() in MIME_TYPES:
            sidecar = provenance.credentials(self.tmp, self.final, model_name=model_name, model_id=model_id,
                                             frames=frames, swapped=swapped)
            return {"credentials_sidecar": str(sidecar)}
        return {}

    def place(self, result: dict[str, Any], provenance: Provenance, *, model_name: str,
              model_id: int | None) -> dict[str, Any]:
        """After the rename: move the sidecar beside the final file, or sign a manifest for it."""
        if "credentials_sidecar" in result:
            return {"credentials_sidecar": str(place_sidecar(Path(result["credentials_sidecar"]), self.final))}
        return {"manifest": str(provenance.seal(self.final.parent, [self.final], model_name=model_name,
                                               model_id=model_id, name=f"{self.final.name}.manifest.json"))}


class LayersVideoSink:
    """``--layers NAME.mov``: the merged frames with the face's matte as alpha, in ProRes 4444 (what a
    compositor drops over the plate), with embedded credentials and a sidecar beside it."""

    def __init__(self, path: Path, info: VideoInfo, stack: ExitStack) -> None:
        self.final, self.info = path, info
        self.tmp = stack.enter_context(atomic_path(path))
        self.writer = stack.enter_context(VideoWriter(
            self.tmp, width=info.width, height=info.height, fps=info.rate, time_base=info.time_base,
            codec="prores_4444", colour=info.colour, timecode=info.timecode, sample_aspect=info.sample_aspect))

    def write(self, item: WorkItem) -> None:
        assert item.layer is not None
        self.writer.write(item.layer, item.frame.pts if self.info.time_base is not None else None)

    def finish(self, provenance: Provenance, *, model_name: str, model_id: int | None, frames: int,
               swapped: int) -> dict[str, Any]:
        self.writer.close()
        return {"layers_sidecar": str(provenance.credentials(self.tmp, self.final, model_name=model_name,
                                                             model_id=model_id, frames=frames, swapped=swapped))}


class SequenceSink:
    def __init__(self, encode: Encode, info: VideoInfo) -> None:
        self.spec = encode.output
        self.writer = SequenceWriter(self.spec, width=info.width, height=info.height, start=encode.start)

    def write(self, item: WorkItem) -> None:
        image = item.output16 if item.output16 is not None else item.output
        assert image is not None
        self.writer.write(image, item.frame.index)

    def finish(self, provenance: Provenance, *, model_name: str, model_id: int | None, frames: int,
               swapped: int) -> dict[str, Any]:
        files = list(dict.fromkeys(self.writer.written))
        signed = [p for p in files if p.suffix.lower() in SIGNED_IMAGES]
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            list(pool.map(lambda p: provenance.sign_image(p, model_name=model_name, model_id=model_id,
                                                          what="frame of a face replacement"), signed))
        folder = self.spec.path.parent
        return {"manifest": str(provenance.seal(folder, files, model_name=model_name, model_id=model_id)),
                "frames_signed": len(signed)}
