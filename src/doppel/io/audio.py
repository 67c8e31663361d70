"""A source's audio carried into an output container, interleaved with the video as it is written.

Copied unchanged where the container holds the codec, re-encoded otherwise (AAC; PCM in MXF). Used by
:class:`doppel.io.writer.VideoWriter` (a new encode) and :func:`doppel.io.remux.join` (chunks joined
without re-encoding), so both carry the same audio.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from doppel.io.video import is_image_file, open_input

log = logging.getLogger(__name__)

# Audio codecs each output container holds as-is; anything else is re-encoded (AAC; PCM in MXF).
_AUDIO_COPY_OK: dict[str, frozenset[str] | None] = {
    ".mp4": frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}),
    ".m4v": frozenset({"aac", "mp3", "alac", "ac3", "eac3"}),
    ".mov": frozenset({"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le"}),
    ".mkv": None,  # Matroska holds any codec
    ".mxf": frozenset({"pcm_s16le", "pcm_s24le"}),
}
_AUDIO_REENCODE: dict[str, str] = {".mxf": "pcm_s16le"}


class AudioCarry:
    """The audio of ``source`` into ``out``, interleaved with video by :meth:`until` (seconds)."""

    def __init__(self, out: Any, source: Path, suffix: str) -> None:
        self._out = out
        self._in: Any = None
        self._packets: Iterator[Any] | None = None
        self._pending: Any = None
        self._stream: Any = None
        self._copy = False
        if source.is_dir() or is_image_file(source):
            return
        src = open_input(source)
        if not src.streams.audio:
            src.close()
            return
        stream = src.streams.audio[0]
        allowed = _AUDIO_COPY_OK.get(suffix.lower(), frozenset())
        if allowed is None or stream.codec_context.name in allowed:
            self._stream = out.add_stream_from_template(stream)
            self._copy = True
        else:
            codec = _AUDIO_REENCODE.get(suffix.lower(), "aac")
            self._stream = out.add_stream(codec, rate=stream.codec_context.sample_rate or 48000)
            log.info("re-encoding %s audio as %s for %s", stream.codec_context.name, codec, suffix)
        self._in, self._packets = src, iter(src.demux(stream))

    def until(self, seconds: float | None) -> None:
        """Mux the audio up to ``seconds`` (all of it for None)."""
        while self._packets is not None:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                self._packets = None
                break
            if packet.dts is None and packet.size == 0:
                continue  # demuxer flush packet
            t = float(packet.dts * packet.time_base) if packet.dts is not None else None
            if seconds is not None and t is not None and t > seconds:
                self._pending = packet
                return
            if self._copy:
                packet.stream = self._stream
                self._out.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None  # let the encoder number samples itself
                    for out in self._stream.encode(frame):
                        self._out.mux(out)
        if seconds is None and self._stream is not None and not self._copy:
            for out in self._stream.encode(None):
                self._out.mux(out)
            self._stream = None

    def close(self) -> None:
        if self._in is not None:
            self._in.close()
            self._in = None
