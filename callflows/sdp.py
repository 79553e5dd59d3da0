"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio stream of G.711 plus
telephone-event (RFC 4733). Hold is a peer offering ``sendonly``/``inactive`` or ``c=0.0.0.0``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

SUPPORTED = {"PCMU": 0, "PCMA": 8}  # static payload types (RFC 3551)
TELEPHONE_EVENT = "telephone-event"
DEFAULT_TE_PT = 101
_REVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


class SdpError(ValueError):
    pass


@dataclass
class MediaDescription:
    media: str
    port: int
    proto: str
    formats: list[int]
    rtpmap: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"
    connection: str | None = None

    def encoding(self, pt: int) -> str:
        """The upper-case encoding name of a payload type, static types by number."""
        if pt in self.rtpmap:
            return self.rtpmap[pt].split("/")[0].upper()
        return {0: "PCMU", 8: "PCMA"}.get(pt, "")


@dataclass
class SessionDescription:
    connection: str | None
    media: list[MediaDescription]
    direction: str = "sendrecv"


@dataclass(frozen=True)
class MediaParams:
    """What offer/answer settled for the audio stream, from our point of view."""

    remote_host: str
    remote_port: int
    codec: str  # PCMU | PCMA
    payload_type: int
    te_payload_type: int | None
    remote_direction: str = "sendrecv"

    @property
    def on_hold(self) -> bool:
        return (self.remote_direction in ("sendonly", "inactive") or self.remote_host in ("0.0.0.0", "::")
                or self.remote_port == 0)


def parse_sdp(data: bytes) -> SessionDescription:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not UTF-8") from exc
    session = SessionDescription(None, [])
    current: MediaDescription | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        try:
            if kind == "m":
                parts = value.split()
                current = MediaDescription(parts[0], int(parts[1].split("/")[0]), parts[2],
                                           [int(f) for f in parts[3:] if f.isdigit()])
                if not 0 <= current.port < 65536:
                    raise SdpError("bad media port")
                session.media.append(current)
            elif kind == "c":
                address = value.split()[2].split("/")[0]
                if current is None:
                    session.connection = address
                else:
                    current.connection = address
            elif kind == "a":
                name, _, rest = value.partition(":")
                if name in _REVERSE:
                    if current is None:
                        session.direction = name
                    else:
                        current.direction = name
                elif name == "rtpmap" and current is not None:
                    pt, _, encoding = rest.partition(" ")
                    current.rtpmap[int(pt)] = encoding.strip()
        except (IndexError, ValueError) as exc:
            raise SdpError(f"bad SDP line {line[:60]!r}") from exc
    if not session.media:
        raise SdpError("SDP has no media line")
    return session


class LocalSession:
    """Our side of one call's SDP: origin id and the version that each new description bumps."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self.session_id = secrets.randbelow(2**31)
        self.version = self.session_id

    def describe(self, codecs: list[tuple[str, int]], te_pt: int | None, direction: str = "sendrecv") -> bytes:
        self.version += 1
        pts = [pt for _, pt in codecs] + ([te_pt] if te_pt is not None else [])
        lines = [
            "v=0",
            f"o=watchline {self.session_id} {self.version} IN IP4 {self.host}",
            "s=Watchline",
            f"c=IN IP4 {self.host}",
            "t=0 0",
            f"m=audio {self.port} RTP/AVP {' '.join(map(str, pts))}",
        ]
        lines += [f"a=rtpmap:{pt} {name}/8000" for name, pt in codecs]
        if te_pt is not None:
            lines += [f"a=rtpmap:{te_pt} {TELEPHONE_EVENT}/8000", f"a=fmtp:{te_pt} 0-16"]
        lines += ["a=ptime:20", f"a={direction}"]
        return ("\r\n".join(lines) + "\r\n").encode()

    def offer(self) -> bytes:
        return self.describe(list(SUPPORTED.items()), DEFAULT_TE_PT)


def _audio(session: SessionDescription) -> MediaDescription:
    for m in session.media:
        if m.media == "audio" and m.port != 0 and m.proto.upper().startswith("RTP/AVP"):
            return m
    raise SdpError("no usable audio stream")


def _settle(session: SessionDescription, choose_from: list[int]) -> MediaParams:
    audio = _audio(session)
    host = audio.connection or session.connection
    if not host:
        raise SdpError("no connection address")
    codec_pt = next((pt for pt in choose_from if audio.encoding(pt) in SUPPORTED), None)
    if codec_pt is None:
        raise SdpError("no common codec")
    te = next((pt for pt in audio.formats if audio.encoding(pt) == TELEPHONE_EVENT.upper()), None)
    direction = audio.direction if audio.direction != "sendrecv" else session.direction
    return MediaParams(host, audio.port, audio.encoding(codec_pt), codec_pt, te, direction)


def answer_offer(offer: bytes, local: LocalSession) -> tuple[MediaParams, bytes]:
    """Pick the first offered codec we support (the offerer's preference) and build our answer."""
    session = parse_sdp(offer)
    params = _settle(session, _audio(session).formats)
    codecs = [(params.codec, params.payload_type)]
    body = local.describe(codecs, params.te_payload_type, _REVERSE.get(params.remote_direction, "sendrecv"))
    return params, body


def accept_answer(answer: bytes) -> MediaParams:
    """Read the peer's answer to our offer; its first listed format is what it will send."""
    session = parse_sdp(answer)
    return _settle(session, _audio(session).formats)
