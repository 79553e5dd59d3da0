"""Call recordings: one stereo 16-bit 8 kHz WAV per call leg (remote party left, Watchline or the
bridged agent right), written a 20 ms frame at a time from G.711 through translate tables, and the
retention sweep that deletes recordings older than N days.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

from twisted.logger import Logger

from callflows.media.g711 import pcm_tables

log = Logger()

FRAME = 160  # samples per 20 ms at 8 kHz
_SILENT_PCM = bytes(FRAME)


class CallRecording:
    """Stereo WAV writer. ``write`` takes one frame per channel in each channel's codec, or None for
    silence; the file's length is therefore exactly the number of media ticks it was fed. Frames are
    buffered and written a second at a time; the header's sizes are filled in on ``close``."""

    FLUSH_BYTES = 4 * 8000  # one second of stereo 16-bit audio

    def __init__(self, path: Path, remote_codec: str = "PCMU", local_codec: str = "PCMU"):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")  # noqa: SIM115 (kept open for the call's life)
        self._file.write(_wav_header(0))
        self.frames = 0
        self._pending = bytearray()
        self._out = bytearray(4 * FRAME)
        self.set_codecs(remote_codec, local_codec)
        self.closed = False

    def set_codecs(self, remote_codec: str, local_codec: str) -> None:
        self._remote = pcm_tables(remote_codec)
        self._local = pcm_tables(local_codec)

    def write(self, remote: bytes | None, local: bytes | None) -> None:
        if self.closed:
            return
        out = self._out
        if remote is not None and len(remote) == FRAME:
            out[0::4] = remote.translate(self._remote[0])
            out[1::4] = remote.translate(self._remote[1])
        else:
            out[0::4] = _SILENT_PCM
            out[1::4] = _SILENT_PCM
        if local is not None and len(local) == FRAME:
            out[2::4] = local.translate(self._local[0])
            out[3::4] = local.translate(self._local[1])
        else:
            out[2::4] = _SILENT_PCM
            out[3::4] = _SILENT_PCM
        self._pending += out
        self.frames += FRAME
        if len(self._pending) >= self.FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        try:
            self._file.write(self._pending)
        except OSError:
            log.failure("recording {path} failed; closing it", path=self.path)
            self.closed = True
            self._file.close()
        self._pending.clear()

    @property
    def duration(self) -> float:
        return self.frames / 8000

    def close(self) -> None:
        if not self.closed:
            self._flush()
            if self.closed:
                return
            self.closed = True
            self._file.seek(0)
            self._file.write(_wav_header(4 * self.frames))
            self._file.close()


def _wav_header(data_bytes: int) -> bytes:
    """RIFF/WAVE header for 8 kHz stereo 16-bit PCM."""
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 8000, 8000 * 4, 4, 16)
            + b"data" + struct.pack("<I", data_bytes))


def sweep_recordings(directory: Path, retention_days: float, now: float | None = None) -> list[Path]:
    """Delete ``*.wav`` files under ``directory`` last modified more than ``retention_days`` ago.
    Blocking file-system work: run it in a thread."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    removed = []
    if not directory.is_dir():
        return removed
    for path in directory.rglob("*.wav"):
        try:
            if path.stat().st_mtime < cutoff:
                os.unlink(path)
                removed.append(path)
        except OSError:
            continue  # vanished meanwhile, or not ours to delete
    return removed
