"""Stereo call recordings and the retention sweep."""

from __future__ import annotations

import os
import wave
from array import array

from callflows.media.g711 import alaw_decode, ulaw_decode
from callflows.recording import CallRecording, sweep_recordings


def test_stereo_remote_left_local_right(tmp_path):
    path = tmp_path / "a" / "call.wav"
    recording = CallRecording(path, remote_codec="PCMA", local_codec="PCMU")
    recording.write(bytes([0xAA]) * 160, bytes([0x80]) * 160)
    recording.write(None, bytes([0x00]) * 160)
    recording.write(b"short", None)  # not a frame: silence
    recording.close()
    recording.close()
    recording.write(bytes(160), bytes(160))  # after close: ignored
    assert recording.duration == 3 * 0.02
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()) == (2, 2, 8000, 480)
        samples = array("h", wav.readframes(480))
    left, right = samples[0::2], samples[1::2]
    assert set(left[:160]) == {alaw_decode(0xAA)} and set(right[:160]) == {ulaw_decode(0x80)}
    assert set(left[160:]) == {0} and set(right[160:320]) == {ulaw_decode(0x00)} and set(right[320:]) == {0}


def test_sweep_deletes_only_old_wavs(tmp_path):
    old = tmp_path / "2020" / "old.wav"
    new = tmp_path / "new.wav"
    other = tmp_path / "notes.txt"
    for path in (old, new, other):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    now = 1_000_000_000
    os.utime(old, (now - 91 * 86400, now - 91 * 86400))
    os.utime(new, (now - 89 * 86400, now - 89 * 86400))
    os.utime(other, (now - 400 * 86400, now - 400 * 86400))
    assert sweep_recordings(tmp_path, 90, now=now) == [old]
    assert new.exists() and other.exists() and not old.exists()
    assert sweep_recordings(tmp_path / "missing", 90) == []
