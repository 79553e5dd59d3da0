"""SIP messages (RFC 3261 section 7): parsing datagrams into requests/responses and serialising them.

Our own small parser rather than ``twisted.protocols.sip``: that module imports the global reactor and
its line parser is built for streams; here one datagram is one message, and anything malformed must
turn into a ``SipParseError`` (never another exception) so the endpoint can answer 400 or drop it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 65535
_COMPACT = {
    "v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
    "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding", "o": "event",
}
_CANONICAL = {
    "via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq", "contact": "Contact",
    "content-length": "Content-Length", "content-type": "Content-Type", "max-forwards": "Max-Forwards",
    "www-authenticate": "WWW-Authenticate", "proxy-authenticate": "Proxy-Authenticate",
    "proxy-authorization": "Proxy-Authorization", "record-route": "Record-Route", "user-agent": "User-Agent",
}
# Headers whose values may be comma-joined lists on one line (RFC 3261 7.3.1); never the auth ones.
_LIST_HEADERS = {"via", "route", "record-route", "contact", "allow", "supported"}
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_REQUEST_LINE = re.compile(r"^([A-Za-z0-9\-.!%*_+`'~]+) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)$")
MANDATORY = ("via", "from", "to", "call-id", "cseq")


class SipParseError(ValueError):
    """A datagram that is not a valid SIP message. ``request`` is set when enough of a request was
    understood (start line and the headers a response needs) to answer it with 400."""

    def __init__(self, reason: str, request: SipRequest | None = None):
        super().__init__(reason)
        self.reason = reason
        self.request = request


def _norm(name: str) -> str:
    low = name.strip().lower()
    return _COMPACT.get(low, low)


class Headers:
    """Ordered multi-valued headers with case-insensitive and compact-form names."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        self._items: list[tuple[str, str]] = [(_norm(k), v) for k, v in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        key = _norm(name)
        for k, v in self._items:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = _norm(name)
        return [v for k, v in self._items if k == key]

    def add(self, name: str, value: str) -> None:
        self._items.append((_norm(name), value))

    def prepend(self, name: str, value: str) -> None:
        self._items.insert(0, (_norm(name), value))

    def set(self, name: str, value: str) -> None:
        key = _norm(name)
        for i, (k, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (key, value)
                self._items = [kv for j, kv in enumerate(self._items) if kv[0] != key or j == i]
                return
        self._items.append((key, value))

    def remove(self, name: str) -> None:
        key = _norm(name)
        self._items = [kv for kv in self._items if kv[0] != key]

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def copy(self) -> Headers:
        copy = Headers()
        copy._items = list(self._items)
        return copy


@dataclass
class SipRequest:
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("cseq", ""))

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id", "")

    @property
    def branch(self) -> str:
        return top_via_params(self).get("branch", "")

    def to_bytes(self) -> bytes:
        return _serialise(f"{self.method} {self.uri} SIP/2.0", self.headers, self.body)


@dataclass
class SipResponse:
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("cseq", ""))

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id", "")

    @property
    def branch(self) -> str:
        return top_via_params(self).get("branch", "")

    def to_bytes(self) -> bytes:
        return _serialise(f"SIP/2.0 {self.status} {self.reason}", self.headers, self.body)


SipMessage = SipRequest | SipResponse


def _serialise(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    for name, value in headers:
        if name != "content-length":
            lines.append(f"{_CANONICAL.get(name, name.title())}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def _split_list(value: str) -> list[str]:
    """Split a comma-joined header value, respecting quotes and <...>."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and ch == ",":
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def parse_cseq(value: str) -> tuple[int, str]:
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10 or not _TOKEN.match(parts[1]):
        raise SipParseError(f"bad CSeq {value!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise SipParseError(f"CSeq number too large {value!r}")
    return number, parts[1].upper()


def parse_message(data: bytes) -> SipMessage:
    """Parse one datagram. Raises ``SipParseError`` for anything that is not a well-formed message."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError("message too large")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            raise SipParseError("no end of headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("headers are not UTF-8") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0]:
        lines.pop(0)  # RFC 3261 7.5: ignore CRLFs before the start line (keep-alives)
    if not lines:
        raise SipParseError("empty message")
    start = lines[0]
    headers = Headers()
    bad_line = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # folded continuation line
            if not headers._items:
                raise SipParseError("continuation line before any header")
            k, v = headers._items[-1]
            headers._items[-1] = (k, v + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name.strip()):
            bad_line = bad_line or line  # read on: the headers after it may still allow a 400
            continue
        key = _norm(name)
        value = value.strip()
        values = _split_list(value) if key in _LIST_HEADERS else [value]
        for v in values:
            headers._items.append((key, v))
    if bad_line:
        raise SipParseError(f"bad header line {bad_line[:40]!r}", _request_for_reply(start, headers))
    message: SipMessage
    m = _REQUEST_LINE.match(start)
    if m:
        message = SipRequest(m.group(1).upper(), m.group(2), headers, body)
    else:
        m = _STATUS_LINE.match(start)
        if not m:
            raise SipParseError(f"bad start line {start[:60]!r}")
        message = SipResponse(int(m.group(1)), m.group(2), headers, body)
    _validate(message)
    return message


def _request_for_reply(start: str, headers: Headers) -> SipRequest | None:
    m = _REQUEST_LINE.match(start)
    if not m or m.group(1).upper() == "ACK":
        return None
    request = SipRequest(m.group(1).upper(), m.group(2), headers.copy())
    if all(request.headers.get(h) for h in MANDATORY):
        return request
    return None


def _validate(message: SipMessage) -> None:
    reply = message if isinstance(message, SipRequest) and message.method != "ACK" else None
    for name in MANDATORY:
        if not message.headers.get(name):
            raise SipParseError(f"missing {name} header", None)
    try:
        _, method = message.cseq
        params = top_via_params(message)
    except SipParseError as exc:
        raise SipParseError(exc.reason, reply) from exc
    if isinstance(message, SipRequest) and method != message.method:
        raise SipParseError("CSeq method does not match the request line", reply)
    if not params.get("branch"):
        raise SipParseError("top Via has no branch", reply)
    length = message.headers.get("content-length")
    if length is not None:
        if not length.isdigit() or len(length) > 6:
            raise SipParseError("bad Content-Length", reply)
        n = int(length)
        if n > len(message.body):
            raise SipParseError("body shorter than Content-Length", reply)
        message.body = message.body[:n]


_VIA = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+([^;\s]+)\s*(.*)$")


def parse_via(value: str) -> tuple[str, str, dict[str, str]]:
    """``SIP/2.0/UDP host:port;branch=..`` -> (transport, sent-by, params)."""
    m = _VIA.match(value.strip())
    if not m:
        raise SipParseError(f"bad Via {value[:60]!r}")
    return m.group(1).upper(), m.group(2), parse_params(m.group(3))


def top_via_params(message: SipMessage) -> dict[str, str]:
    via = message.headers.get("via")
    if via is None:
        raise SipParseError("missing Via")
    return parse_via(via)[2]


def parse_params(text: str) -> dict[str, str]:
    """``;a=1;b;c="x"`` -> {a: 1, b: '', c: 'x'} (names lower-cased)."""
    params: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return params
