"""One RTP stream on the fake network: paced sending, DTMF, receiving, recording, relaying."""

from __future__ import annotations

import wave
from array import array

import pytest
from twisted.internet.protocol import DatagramProtocol

from callflows.media.clock import MediaClock
from callflows.media.dtmf import event_payloads, parse_event
from callflows.media.rtp import build_rtp, parse_rtp
from callflows.media.stream import MediaStream
from callflows.recording import CallRecording
from callflows.sdp import MediaParams
from tests.callflows.fakes import FakeNetwork


class Peer(DatagramProtocol):
    def __init__(self):
        self.packets = []

    def datagramReceived(self, data, addr):  # noqa: N802
        self.packets.append(parse_rtp(data))


@pytest.fixture
def net():
    return FakeNetwork(latency=0.0005)


def stream_to_peer(net, port=30000, codec="PCMU", pt=0, te=101, digits=None):
    media = MediaClock(net)
    stream = MediaStream(media, (digits.append if digits is not None else lambda d: None))
    net.listenUDP(port, stream, interface="127.0.0.1")
    peer = Peer()
    net.listenUDP(port + 1000, peer, interface="127.0.0.1")
    stream.configure(MediaParams("127.0.0.1", port + 1000, codec, pt, te))
    return stream, peer


def test_play_sends_paced_frames_then_silence(net):
    stream, peer = stream_to_peer(net)
    audio = bytes(range(100)) * 5  # 500 bytes: 3 full frames and a padded one
    done = stream.play(audio)
    stream.start()
    net.run(0.21, step=0.01)
    assert done.called and done.result is True
    packets = peer.packets
    assert len(packets) == 10
    assert [p.seq - packets[0].seq for p in packets] == list(range(10))
    assert [p.timestamp - packets[0].timestamp for p in packets] == [160 * i for i in range(10)]
    assert packets[0].marker and not packets[1].marker
    assert b"".join(p.payload for p in packets[:4])[:500] == audio
    assert packets[3].payload[20:] == b"\xff" * 140 and packets[5].payload == b"\xff" * 160
    assert {p.ssrc for p in packets} == {stream.ssrc} and {p.payload_type for p in packets} == {0}


def test_stop_playback_fires_false_and_muted_sends_nothing(net):
    stream, peer = stream_to_peer(net)
    done = stream.play(b"\x00" * 1600)
    stream.start()
    net.run(0.04, step=0.02)
    stream.stop_playback()
    assert done.result is False
    stream.muted = True
    net.run(0.01, step=0.01)  # let the packets in flight arrive
    count = len(peer.packets)
    net.run(0.1, step=0.02)
    assert len(peer.packets) == count


def test_send_digits_as_events_with_one_timestamp_each(net):
    stream, peer = stream_to_peer(net, te=96)
    stream.start()
    done = stream.send_digits("12", duration_ms=60, gap_ms=40)
    net.run(0.5, step=0.02)
    assert done.called
    events = [p for p in peer.packets if p.payload_type == 96]
    assert len(events) == 2 * (2 + 3)  # 2 growing + 3 end packets per 60 ms digit
    first, second = events[:5], events[5:]
    assert len({p.timestamp for p in first}) == 1 and len({p.timestamp for p in second}) == 1
    assert first[0].marker and second[0].marker and not first[1].marker
    assert [parse_event(p.payload)[0] for p in events] == [1] * 5 + [2] * 5
    assert [parse_event(p.payload)[1] for p in first] == [False, False, True, True, True]
    with pytest.raises(ValueError):
        stream.te_payload_type = None
        stream.send_digits("3")


def test_receiving_audio_records_and_events_become_digits(net, tmp_path):
    digits = []
    stream, peer = stream_to_peer(net, digits=digits)
    stream.recording = recording = CallRecording(tmp_path / "r.wav")
    stream.start()
    remote = ("127.0.0.1", 31000)
    for i in range(3):
        net.send(build_rtp(0, False, i, i * 160, 77, bytes([0x80]) * 160), remote, ("127.0.0.1", 30000))
        net.send(build_rtp(8, False, i, i * 160, 77, bytes([0xAA]) * 160), remote, ("127.0.0.1", 30000))
    for payload in event_payloads("9"):
        net.send(build_rtp(101, False, 9, 4000, 77, payload), remote, ("127.0.0.1", 30000))
    net.send(build_rtp(97, False, 9, 4000, 77, b"noop"), remote, ("127.0.0.1", 30000))  # ignored
    net.run(0.2, step=0.02)
    recording.close()
    assert digits == ["9"]
    with wave.open(str(tmp_path / "r.wav")) as wav:
        samples = array("h", wav.readframes(wav.getnframes()))
    left = samples[0::2]
    # µ-law 0x80 and A-law 0xAA (transcoded to the stream's µ-law on arrival) are both full scale
    assert set(left) == {0, 32124} and list(left).count(32124) == 6 * 160
    assert stream.received_packets == 3 * 2 + len(event_payloads("9")) + 1


def test_relay_rewrites_ssrc_sequence_timestamp_and_transcodes(net):
    a, _ = stream_to_peer(net, port=30000)
    b, b_peer = stream_to_peer(net, port=30002, codec="PCMA", pt=8, te=100)
    a.relay_to = b
    b.set_bridged(True)
    a.start()
    b.start()
    remote = ("127.0.0.1", 31000)
    for i in range(3):
        net.send(build_rtp(0, i == 0, 500 + i, 90000 + 160 * i, 1, bytes([0xFF]) * 160), remote, ("127.0.0.1", 30000))
    for payload in event_payloads("4")[:2]:
        net.send(build_rtp(101, False, 600, 91000, 1, payload), remote, ("127.0.0.1", 30000))
    net.send(build_rtp(0, False, 1, 5, 2, bytes([0xFF]) * 160), remote, ("127.0.0.1", 30000))  # new SSRC
    net.run(0.1, step=0.02)
    relayed = [p for p in b_peer.packets]
    assert {p.ssrc for p in relayed} == {b.ssrc}
    assert [p.seq - relayed[0].seq for p in relayed] == list(range(len(relayed)))
    audio = [p for p in relayed if p.payload_type == 8]
    assert audio[0].payload == bytes([0xD5]) * 160  # µ-law silence as A-law silence
    assert audio[1].timestamp - audio[0].timestamp == 160
    events = [p for p in relayed if p.payload_type == 100]
    assert len(events) == 2 and events[0].timestamp - audio[0].timestamp == 1000
    assert audio[-1].marker  # the new incoming SSRC restarts the timestamp mapping
    assert len(relayed) == 6  # bridged: b sends nothing of its own
