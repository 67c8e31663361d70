"""Joining video chunks end to end without re-encoding, and carrying a source's audio into the result.

Each chunk is an H.264 stream that starts on a keyframe (a new encode always does) and holds the frames'
own timestamps, all encoded with the same settings (so one set of codec parameters fits them all). The
joined file takes their packets as they are (stream copy) in order, and the audio of ``audio_from`` is
interleaved with them: copied unchanged where the container holds its codec, re-encoded otherwise, as
:class:`doppel.io.writer.VideoWriter` does, so a joined file carries the same audio as one written whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from doppel.core.errors import MediaError
from doppel.io.audio import AudioCarry
from doppel.io.video import _reason, open_input


def _follow(packet: Any, last: Fraction | None, path: Path) -> Fraction:
    """Give ``packet`` a decoding time after ``last`` (the previous chunk's last) and returns it.

    An encoder with B-frames dates a stream's first packets before its first frame, by as many frame
    durations as it delays; with variable frame rate that can reach back before the previous chunk's last
    packet. Those few packets move forward by one tick each, still before their presentation time: the
    pictures, their order and their presentation times stay exactly as encoded."""
    tb = packet.time_base
    dts = packet.dts * tb
    if last is not None and dts <= last:
        moved = math.floor(last / tb) + 1
        if moved > packet.pts:
            raise MediaError(f"chunk starts at {float(packet.pts * tb):.3f} s, before the previous chunk ends "
                             f"({float(last):.3f} s); chunks must be in order", path=path)
        packet.dts = moved
        dts = moved * tb
    return Fraction(dts)


def join_video(chunks: Sequence[Path], output: Path, *, audio_from: Path | None = None) -> int:
    """Write ``chunks`` (video-only files, in order) into ``output`` by stream copy, with the audio of
    ``audio_from``; returns the number of video frames. ``output`` is written in place: give it a
    temporary name (see :func:`doppel.io.atomic.atomic_path`). Raises :class:`MediaError` when the chunks
    cannot be joined without re-encoding (different codec parameters, or timestamps out of order)."""
    if not chunks:
        raise MediaError("no chunks to join", path=output)
    frames, last_dts = 0, None
    try:
        out = av.open(str(output), mode="w")
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot write ({_reason(exc)})", path=output) from None
    audio: AudioCarry | None = None
    try:
        first = open_input(chunks[0])
        template = first.streams.video[0]
        extradata = bytes(template.codec_context.extradata or b"")
        video = out.add_stream_from_template(template)
        first.close()
        if audio_from is not None:
            audio = AudioCarry(out, audio_from, output.suffix)
        for path in chunks:
            with open_input(path) as src:
                if not src.streams.video:
                    raise MediaError("chunk has no video stream", path=path)
                stream = src.streams.video[0]
                if bytes(stream.codec_context.extradata or b"") != extradata:
                    raise MediaError("chunk was encoded with other codec parameters than the first; it cannot be "
                                     "joined without re-encoding", path=path)
                for packet in src.demux(stream):
                    if packet.size == 0:
                        continue
                    if packet.dts is not None and packet.pts is not None:
                        last_dts = _follow(packet, last_dts, path)
                        if audio is not None:
                            audio.until(float(last_dts))
                    packet.stream = video
                    out.mux(packet)
                    frames += 1
        if audio is not None:
            audio.until(None)
        out.close()
    except BaseException:
        out.close()
        raise
    finally:
        if audio is not None:
            audio.close()
    return frames
