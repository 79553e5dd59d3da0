"""JT/T 808 packet codec: the message header (2013 and 2019 layouts), the check code, and
building platform packets that copy the terminal's header flavour.

Input is one un-escaped frame from ``framing`` (header + body + check code). The header layout is
read from attribute bit 14, then sanity-checked against the frame length: some field devices set
bit 14 but send a 2013 header (and vice versa), so when the declared layout does not add up and
the other one does, the other one wins (jt808.md §1.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from ingest.jt808.framing import escape, wrap, xor_check

_HEAD = struct.Struct(">HH")
_WORD = struct.Struct(">H")
_WORD2 = struct.Struct(">HH")
_PHONE_SERIAL_2013 = struct.Struct(">6sH")
_HEADER_2013 = struct.Struct(">HH6sH")  # message id, attributes, phone, serial

ATTR_LENGTH_MASK = 0x03FF
ATTR_ENCRYPTION_MASK = 0x1C00
ATTR_SUBPACKAGE = 0x2000
ATTR_VERSION_2019 = 0x4000

MAX_BODY = 1023
_LAYOUT_BITS = ATTR_VERSION_2019 | ATTR_SUBPACKAGE  # either one: not the plain 2013 header


class PacketError(ValueError):
    """An un-escaped frame that is not a well-formed packet."""


class MalformedPacket(PacketError):
    pass


class BadCheckCode(PacketError):
    """The XOR check code does not match; the header was readable, so the sender can be answered."""

    def __init__(self, message: str, packet: Packet) -> None:
        super().__init__(message)
        self.packet = packet


# Not frozen: a frozen dataclass pays object.__setattr__ per field, and a header is built for
# every frame on the hot path. Treat instances as read-only all the same.
@dataclass(slots=True, eq=True)
class Header:
    msg_id: int
    attrs: int
    version: int | None  # 2019 protocol version byte; None for the 2013 (and 2011) layout
    phone_bcd: bytes  # 6 (2013) or 10 (2019) bytes, kept raw so replies echo them exactly
    serial: int
    total: int = 0  # sub-package fields, only when ATTR_SUBPACKAGE is set
    index: int = 0

    @property
    def is_2019(self) -> bool:
        return self.version is not None

    @property
    def body_length(self) -> int:
        return self.attrs & ATTR_LENGTH_MASK

    @property
    def encrypted(self) -> bool:
        return bool(self.attrs & ATTR_ENCRYPTION_MASK)

    @property
    def is_subpackage(self) -> bool:
        return bool(self.attrs & ATTR_SUBPACKAGE)

    @property
    def phone(self) -> str:
        return decode_phone(self.phone_bcd)


@dataclass(slots=True)
class Packet:
    header: Header
    body: bytes
    checksum_ok: bool = True


def decode_phone(bcd: bytes) -> str:
    """The BCD phone as its digit string, leading zeros kept.

    Some terminals put a binary IMEI into the 6 phone bytes instead of BCD; those read as a
    48-bit integer followed by its Luhn digit (jt808.md §1.1).
    """
    digits = bcd.hex()
    if digits.isdigit():
        return digits
    if len(bcd) == 6:
        imei = int.from_bytes(bcd, "big")
        return f"{imei}{luhn_digit(imei)}"
    return digits


def luhn_digit(number: int) -> int:
    total = 0
    for position, char in enumerate(reversed(str(number))):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def encode_phone(phone: str, is_2019: bool) -> bytes:
    """A phone digit string as BCD[6] (2013) or BCD[10] (2019), left-padded with zeros."""
    width = 20 if is_2019 else 12
    if not phone.isdigit() or len(phone) > width:
        raise ValueError(f"phone {phone!r} is not at most {width} digits")
    return bytes.fromhex(phone.rjust(width, "0"))


def _layout_length(is_2019: bool, split: bool) -> int:
    return (17 if is_2019 else 12) + (4 if split else 0)


def parse_packet(frame: bytes, *, verify_checksum: bool = True) -> Packet:
    """Un-escaped frame -> Packet. Raises MalformedPacket, or BadCheckCode (carrying the packet)."""
    size = len(frame)
    if size < 13:
        raise MalformedPacket(f"frame of {size} bytes is shorter than a header")
    # Read as the 2013 layout first: what nearly every frame is, in one unpack.
    msg_id, attrs, phone, serial = _HEADER_2013.unpack_from(frame)
    if not attrs & _LAYOUT_BITS and (attrs & ATTR_LENGTH_MASK) + 13 == size:
        header = Header(msg_id, attrs, None, phone, serial)
        body = frame[12:-1]
    else:
        header, header_length = _parse_header(frame, size, msg_id, attrs)
        body = frame[header_length:-1]
    # The check code is the XOR of the bytes before it, so all of them XOR to zero when it matches.
    if xor_check(frame):
        packet = Packet(header, body, checksum_ok=False)
        if verify_checksum:
            raise BadCheckCode(f"check code mismatch on msg 0x{msg_id:04X} serial {header.serial}", packet)
        return packet
    return Packet(header, body)


def _parse_header(frame: bytes, size: int, msg_id: int, attrs: int) -> tuple[Header, int]:
    """The header of a 2019 or sub-package frame, or of one whose declared layout does not add up."""
    body_length = attrs & ATTR_LENGTH_MASK
    split = attrs & ATTR_SUBPACKAGE
    is_2019 = bool(attrs & ATTR_VERSION_2019)
    header_length = _layout_length(is_2019, split)
    if header_length + body_length + 1 != size:
        other = _layout_length(not is_2019, split)
        if other + body_length + 1 == size:
            is_2019, header_length = not is_2019, other
        else:
            raise MalformedPacket(
                f"body length {body_length} does not fit a frame of {size} bytes (msg 0x{msg_id:04X})"
            )
    if is_2019:
        version: int | None = frame[4]
        phone = frame[5:15]
        (serial,) = _WORD.unpack_from(frame, 15)
    else:
        version = None
        phone, serial = _PHONE_SERIAL_2013.unpack_from(frame, 4)
    total = index = 0
    if split:
        total, index = _WORD2.unpack_from(frame, header_length - 4)
    return Header(msg_id, attrs, version, phone, serial, total, index), header_length


def build_packet(
    msg_id: int,
    body: bytes,
    *,
    phone_bcd: bytes,
    serial: int,
    version: int | None = None,
    total: int = 0,
    index: int = 0,
) -> bytes:
    """Header + body -> wire bytes (check code, escaping, delimiters).

    ``version`` None builds the 2013 layout (``phone_bcd`` 6 bytes), else the 2019 layout with
    that version byte (``phone_bcd`` 10 bytes). ``total``/``index`` make it a sub-package.
    """
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes needs sub-packages (max {MAX_BODY})")
    attrs = len(body)
    if version is not None:
        attrs |= ATTR_VERSION_2019
    if total:
        attrs |= ATTR_SUBPACKAGE
    head = _HEAD.pack(msg_id, attrs)
    if version is not None:
        head += bytes((version,))
    head += phone_bcd + _WORD.pack(serial & 0xFFFF)
    if total:
        head += _WORD2.pack(total, index)
    return wrap(head + body)


def _prefix(msg_id: int, body_length: int, version: int | None, phone_bcd: bytes) -> tuple[bytes, int]:
    attrs = body_length | (ATTR_VERSION_2019 if version is not None else 0)
    head = _HEAD.pack(msg_id, attrs) + (bytes((version,)) if version is not None else b"") + phone_bcd
    return head, xor_check(head)


_reply_prefix = lru_cache(maxsize=4096)(_prefix)


def build_reply(request: Header, msg_id: int, body: bytes, serial: int) -> bytes:
    """A platform packet to the terminal that sent ``request``, in the same header flavour.

    Same bytes as ``build_packet``; the constant part of the header (and its XOR) is cached per
    terminal, because this runs once per acknowledged frame.
    """
    head, head_xor = _reply_prefix(msg_id, len(body), request.version, request.phone_bcd)
    tail = _WORD.pack(serial & 0xFFFF) + body
    check = head_xor ^ xor_check(tail)
    return b"\x7e" + escape(head + tail + bytes((check,))) + b"\x7e"


PLATFORM_RESPONSE = 0x8001  # messages.PLATFORM_RESPONSE (messages imports nothing from here)
# platform serial, then the 0x8001 body (reply serial, reply id, result), then the check code
_ACK_TAIL = struct.Struct(">HHHBB")


def ack_head(version: int | None, phone_bcd: bytes) -> tuple[bytes, int]:
    """The constant start of every 0x8001 to one terminal, with its XOR, for ``build_ack``. A server
    keeps it per connection: a shared cache smaller than the fleet would miss on every ack."""
    return _prefix(PLATFORM_RESPONSE, 5, version, phone_bcd)


def build_ack(request: Header, serial: int, result: int, head: tuple[bytes, int] | None = None) -> bytes:
    """The 0x8001 platform response to ``request``: ``build_reply`` with its body, for the one reply
    sent per report; the check code of the seven varying bytes is taken from their words (XOR of
    the three words folded to a byte). ``head`` is ``ack_head`` of the request's version and phone,
    when the caller keeps it."""
    head, head_xor = head or _reply_prefix(PLATFORM_RESPONSE, 5, request.version, request.phone_bcd)
    serial &= 0xFFFF
    reply_serial, reply_id = request.serial, request.msg_id
    words = serial ^ reply_serial ^ reply_id
    check = head_xor ^ (words >> 8) ^ (words & 0xFF) ^ result
    packet = head + _ACK_TAIL.pack(serial, reply_serial, reply_id, result, check)
    if 0x7D in packet or 0x7E in packet:  # byte values: a memchr, not a substring search
        packet = escape(packet)
    return b"\x7e" + packet + b"\x7e"
