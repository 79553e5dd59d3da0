"""JT/T 808 message bodies other than the location report: what terminals send us
(0x0001, 0x0100, 0x0102, 0x0107, 0x0701, 0x0702, 0x0704 and 0x0201 envelopes, and the vendor
text answers 0x6006/0x1300) and what the platform sends them (0x8001, 0x8100, 0x8203, 0x8300,
0x8201, 0x8003).

Body decoders raise ``BodyError`` on a body that does not fit its layout; text is GBK with the
0x00 padding stripped, and undecodable bytes are replaced rather than failing the message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Message ids (jt808.md §2).
TERMINAL_RESPONSE = 0x0001
HEARTBEAT = 0x0002
LOGOUT = 0x0003
REGISTER = 0x0100
AUTHENTICATE = 0x0102
TERMINAL_ATTRIBUTES = 0x0107
LOCATION = 0x0200
POSITION_ANSWER = 0x0201
WAYBILL = 0x0701
DRIVER_IDENTITY = 0x0702
BATCH_LOCATION = 0x0704
PASS_THROUGH = 0x0900
# Vendor message ids (not in JT/T 808) that carry reports, as field devices use them.
BATCH_LOCATION_SHORT = 0x0210  # 1-byte item lengths; a 7-byte body is a battery report
TEXT_ANSWER = 0x1300  # answer to a text command, UTF-16BE
ACCELERATION = 0x2070  # accelerometer samples
TEXT_REPORT = 0x6006  # terminal text (version strings, command results), GBK
PLATFORM_RESPONSE = 0x8001
RESEND_REQUEST = 0x8003
REGISTER_RESPONSE = 0x8100
POSITION_QUERY = 0x8201
ALARM_CONFIRMATION = 0x8203
TEXT_MESSAGE = 0x8300

# 0x8001 / 0x0001 results.
RESULT_OK = 0
RESULT_FAIL = 1
RESULT_MESSAGE_ERROR = 2
RESULT_UNSUPPORTED = 3
RESULT_ALARM_CONFIRMED = 4

# 0x8100 results.
REGISTER_OK = 0
REGISTER_VEHICLE_TAKEN = 1
REGISTER_VEHICLE_UNKNOWN = 2
REGISTER_TERMINAL_TAKEN = 3
REGISTER_TERMINAL_UNKNOWN = 4

# 0x8300 text types (2019).
TEXT_NOTIFICATION = 1
TEXT_SERVICE = 2

_RESPONSE = struct.Struct(">HHB")
_WORD = struct.Struct(">H")
_WORD_DWORD = struct.Struct(">HI")
_BATCH_HEAD = struct.Struct(">HB")


class BodyError(ValueError):
    """A message body that does not fit its layout."""


def gbk_text(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("gbk", errors="replace")


# --- terminal -> platform -----------------------------------------------------------------


@dataclass(frozen=True)
class TerminalResponse:
    reply_serial: int
    reply_id: int
    result: int


def decode_terminal_response(body: bytes) -> TerminalResponse:
    if len(body) < 5:
        raise BodyError(f"0x0001 body of {len(body)} bytes, need 5")
    return TerminalResponse(*_RESPONSE.unpack_from(body))


@dataclass(frozen=True)
class Registration:
    province: int
    city: int
    manufacturer: str
    model: str
    terminal_code: str
    plate_colour: int
    plate: str  # the VIN when plate_colour is 0
    layout: int  # 2011, 2013 or 2019


# (manufacturer, model, terminal id) widths per layout (jt808.md §3.1).
_REGISTRATION_WIDTHS = {2011: (5, 8, 7), 2013: (5, 20, 7), 2019: (11, 30, 30)}


def decode_registration(body: bytes, is_2019: bool) -> Registration:
    if is_2019:
        layout = 2019
    else:
        # SmallChi's rule: more than 33 bytes after the two WORDs is the 2013 layout.
        layout = 2013 if len(body) - 4 > 33 else 2011
    maker_w, model_w, id_w = _REGISTRATION_WIDTHS[layout]
    fixed = 4 + maker_w + model_w + id_w + 1
    if len(body) < fixed:
        raise BodyError(f"0x0100 body of {len(body)} bytes is shorter than the {layout} layout ({fixed})")
    province, city = struct.unpack_from(">HH", body)
    pos = 4
    maker = gbk_text(body[pos:pos + maker_w])
    pos += maker_w
    model = gbk_text(body[pos:pos + model_w])
    pos += model_w
    code = gbk_text(body[pos:pos + id_w])
    pos += id_w
    return Registration(province, city, maker, model, code, body[pos], gbk_text(body[pos + 1:]), layout)


@dataclass(frozen=True)
class Authentication:
    auth_code: str
    imei: str = ""
    software_version: str = ""


def decode_authentication(body: bytes, is_2019: bool) -> Authentication:
    if is_2019 and body:
        size = body[0]
        # 2019: length byte, code, IMEI[15], version[20]. A 2019 header over a 2013 body (the
        # whole body is the code) is common enough to fall back to when the lengths disagree.
        if 1 + size + 35 == len(body):
            return Authentication(
                gbk_text(body[1:1 + size]),
                gbk_text(body[1 + size:16 + size]),
                gbk_text(body[16 + size:]),
            )
    return Authentication(gbk_text(body))


@dataclass(frozen=True)
class TerminalAttributes:
    """0x0107: the answer to a terminal-attributes query (0x8107)."""

    terminal_type: int
    manufacturer: str
    model: str
    terminal_code: str
    iccid: str
    hardware_version: str
    firmware_version: str
    gnss: int | None
    network: int | None


# (manufacturer, model, terminal id) widths of 0x0107 per layout (as for 0x0100).
_ATTRIBUTE_WIDTHS = {False: (5, 20, 7), True: (5, 30, 30)}


def decode_terminal_attributes(body: bytes, is_2019: bool) -> TerminalAttributes:
    maker_w, model_w, id_w = _ATTRIBUTE_WIDTHS[is_2019]
    pos = 2 + maker_w + model_w + id_w
    if len(body) < pos + 10:
        raise BodyError(f"0x0107 body of {len(body)} bytes, need {pos + 10}")
    fields = [gbk_text(body[2:2 + maker_w]), gbk_text(body[2 + maker_w:2 + maker_w + model_w]),
              gbk_text(body[pos - id_w:pos]), body[pos:pos + 10].hex()]
    pos += 10
    versions = []
    for _ in range(2):  # hardware, then firmware version: length BYTE + text
        size = body[pos] if pos < len(body) else 0
        versions.append(gbk_text(body[pos + 1:pos + 1 + size]))
        pos += 1 + size
    gnss = body[pos] if pos < len(body) else None
    network = body[pos + 1] if pos + 1 < len(body) else None
    return TerminalAttributes(_WORD.unpack_from(body)[0], *fields, *versions, gnss, network)


def decode_waybill(body: bytes) -> str:
    """0x0701 electronic waybill: length DWORD, then the content (some terminals put command
    results here as text)."""
    if len(body) < 4:
        raise BodyError(f"0x0701 body of {len(body)} bytes, need 4")
    (size,) = struct.unpack_from(">I", body)
    return gbk_text(body[4:4 + size])


@dataclass(frozen=True)
class DriverIdentity:
    """0x0702: a driver's IC card inserted (status 1) or pulled (2)."""

    status: int
    time_bcd: bytes
    read_result: int | None = None  # 0 read OK; otherwise the rest is absent
    name: str = ""
    certificate: str = ""  # qualification certificate code
    agency: str = ""  # issuing agency
    validity_bcd: bytes = b""  # YYYYMMDD
    id_number: str = ""  # 2019: the driver's ID card number


def decode_driver_identity(body: bytes, is_2019: bool) -> DriverIdentity:
    if len(body) < 7:
        raise BodyError(f"0x0702 body of {len(body)} bytes, need 7")
    status, time_bcd = body[0], body[1:7]
    if status != 1 or len(body) < 8:
        return DriverIdentity(status, time_bcd)
    result = body[7]
    if result != 0:
        return DriverIdentity(status, time_bcd, result)
    pos = 8
    try:
        name_size = body[pos]
        name = gbk_text(body[pos + 1:pos + 1 + name_size])
        pos += 1 + name_size
        certificate = gbk_text(body[pos:pos + 20]).strip()
        pos += 20
        agency_size = body[pos]
        agency = gbk_text(body[pos + 1:pos + 1 + agency_size])
        pos += 1 + agency_size
    except IndexError:
        raise BodyError("0x0702 body ends inside the card fields") from None
    validity = body[pos:pos + 4]
    id_number = gbk_text(body[pos + 4:pos + 24]).strip() if is_2019 else ""
    return DriverIdentity(status, time_bcd, result, name, certificate, agency, validity, id_number)


def decode_text_report(body: bytes) -> str:
    """0x6006: encoding byte, then GBK text."""
    if not body:
        raise BodyError("0x6006 body is empty")
    return gbk_text(body[1:])


def decode_text_answer(body: bytes) -> tuple[int, str]:
    """0x1300: serial of the command answered, then UTF-16BE text."""
    if len(body) < 2:
        raise BodyError("0x1300 body has no reply serial")
    return _WORD.unpack_from(body)[0], body[2:].decode("utf-16-be", errors="replace").strip()


def split_batch(body: bytes) -> tuple[int, list[bytes], list[str]]:
    """0x0704 body -> (data type, location bodies, problems). A bad item never hides the rest:
    the walk stops only where the item lengths stop making sense."""
    if len(body) < 3:
        raise BodyError(f"0x0704 body of {len(body)} bytes, need 3")
    count, data_type = _BATCH_HEAD.unpack_from(body)
    items: list[bytes] = []
    problems: list[str] = []
    pos = 3
    for n in range(count):
        if pos + 2 > len(body):
            problems.append(f"item {n + 1} of {count} missing")
            break
        (size,) = _WORD.unpack_from(body, pos)
        pos += 2
        if pos + size > len(body):
            problems.append(f"item {n + 1} declares {size} bytes, {len(body) - pos} left")
            break
        items.append(body[pos:pos + size])
        pos += size
    return data_type, items, problems


def split_short_batch(body: bytes) -> tuple[list[bytes], list[str]]:
    """0x0210 batch body (items with a 1-byte length) -> (location bodies, problems)."""
    items: list[bytes] = []
    pos = 0
    while pos < len(body):
        size = body[pos]
        if pos + 1 + size > len(body):
            return items, [f"item {len(items) + 1} declares {size} bytes, {len(body) - pos - 1} left"]
        items.append(body[pos + 1:pos + 1 + size])
        pos += 1 + size
    return items, []


def split_position_answer(body: bytes) -> tuple[int, bytes]:
    """0x0201 body -> (serial of the 0x8201 it answers, 0x0200 body)."""
    if len(body) < 2:
        raise BodyError("0x0201 body has no reply serial")
    return _WORD.unpack_from(body)[0], body[2:]


# --- platform -> terminal -----------------------------------------------------------------


def platform_response(reply_serial: int, reply_id: int, result: int) -> bytes:
    return _RESPONSE.pack(reply_serial & 0xFFFF, reply_id, result)


def register_response(reply_serial: int, result: int, auth_code: str = "") -> bytes:
    body = _WORD.pack(reply_serial & 0xFFFF) + bytes((result,))
    if result == REGISTER_OK:
        body += auth_code.encode("gbk")
    return body


def alarm_confirmation(alarm_serial: int, bits: int) -> bytes:
    return _WORD_DWORD.pack(alarm_serial & 0xFFFF, bits & 0xFFFFFFFF)


def text_message(
    text: str,
    *,
    is_2019: bool,
    emergency: bool = False,
    display: bool = True,
    tts: bool = False,
    advertising: bool = False,
    text_type: int = TEXT_NOTIFICATION,
) -> bytes:
    """0x8300 body. 2013 flag: b0 emergency, b2 display, b3 TTS, b4 advertising screen.
    2019 flag: b0-1 type (01 service, 10 emergency, 11 notification), b2 display, b3 TTS,
    followed by the text-type byte."""
    raw = text.encode("gbk")
    if len(raw) > 1024:
        raise ValueError(f"text of {len(raw)} GBK bytes exceeds 1024")
    if is_2019:
        if emergency:
            flag = 0b10
        elif text_type == TEXT_SERVICE:
            flag = 0b01
        else:
            flag = 0b11
    else:
        flag = 0x01 if emergency else 0
        flag |= 0x10 if advertising else 0
    flag |= (0x04 if display else 0) | (0x08 if tts else 0)
    head = bytes((flag, text_type)) if is_2019 else bytes((flag,))
    return head + raw


def resend_request(original_serial: int, indices: tuple[int, ...] | list[int], is_2019: bool) -> bytes:
    """0x8003 body: original serial, count (BYTE in 2013, WORD in 2019), the missing indices."""
    count = _WORD.pack(len(indices)) if is_2019 else bytes((len(indices),))
    return _WORD.pack(original_serial & 0xFFFF) + count + b"".join(_WORD.pack(i) for i in indices)
