"""Per-connection limits shared by the terminal servers (config section ``[ingest]``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    idle_timeout: float = 180.0  # seconds without data before the connection is closed
    max_frame_bytes: int = 4096  # a longer frame is garbage
    max_buffer_bytes: int = 65536  # bytes buffered while waiting for a frame end
    max_bad_frames: int = 10  # bad frames (checksum, parse) before the connection is closed
    accept_unknown: bool = False  # serve terminals that are not in the fleet
