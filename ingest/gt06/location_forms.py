"""Vendor tails of the GT06 location packets: what some firmware sends after the GPS block.

The documented 0x12/0x22 bodies are a GPS block plus an LBS block (gt06.md §5.1-5.2); VXT01, S5,
WeTrust, SEEWORLD and SL4X firmware send longer bodies. They are recognised by protocol number and
exact body length (as traccar does) in ``LOCATION_FORMS``; any other length is read as documented.
"""

from __future__ import annotations

from collections.abc import Callable

from ingest.gt06.blocks import need, read_lbs, terminal_info
from ingest.gt06.packet import Packet


def _vxt01_tail(p: Packet, pos: int) -> None:
    """0x12 with a 31-byte body (VXT01): LBS, terminal info, power WORD, GSM, alarm extension."""
    body = p.body
    cell, pos = read_lbs(body, pos)
    p.add_lbs(cell)
    state, info_alarms, bits = terminal_info(body[pos])
    p.status.update(state)
    p.status["power_v"] = int.from_bytes(body[pos + 1:pos + 3], "big") / 100
    p.status["gsm_signal"] = body[pos + 3]
    p.raw_alarms["gt06_info_alarm"] = bits
    p.alarms.extend(info_alarms)


def _s5_tail(p: Packet, pos: int) -> None:
    """0x12 with a 38-byte body (S5): LBS, status with power WORD, alarm, oil, temperature, odometer."""
    body = p.body
    _vxt01_tail(p, pos)
    pos += 8 + 4
    p.read_alarm(pos)  # alarm byte; the next byte is the oil level's high byte, not a language
    p.extras.pop("language", None)
    p.extras["oil"] = int.from_bytes(body[pos + 1:pos + 3], "big")
    temp = body[pos + 3]
    p.extras["temp1"] = -(temp & 0x7F) if temp & 0x80 else temp
    p.extras["odometer"] = int.from_bytes(body[pos + 4:pos + 8], "big") * 10


def _seeworld_tail(p: Packet, pos: int) -> None:
    """0x22 with a 42-byte body (SEEWORLD): LBS with a 4-byte cell ID, ACC/mode/re-upload,
    odometer, travel time, temperature (1/100 degree, bit 15 = minus), humidity (1/100 %)."""
    body = p.body
    cell, pos = read_lbs(body, pos, cell_bytes=4)
    p.add_lbs(cell)
    p.status["acc"] = body[pos] > 0
    p.extras.update(upload_mode=body[pos + 1], reupload=body[pos + 2] > 0)
    p.extras["odometer"] = int.from_bytes(body[pos + 3:pos + 7], "big")
    temp = int.from_bytes(body[pos + 11:pos + 13], "big")
    p.extras["temp1"] = (-(temp & 0x7FFF) if temp & 0x8000 else temp) / 100
    p.extras["humidity"] = int.from_bytes(body[pos + 13:pos + 15], "big") / 100


def _sl4x_tail(p: Packet, pos: int) -> None:
    """0x31 with a 37-byte body (SL4X): LBS with a 2-byte MNC and 8-byte cell ID, ACC, event,
    re-upload, altitude (signed metres)."""
    body = p.body
    need(body, pos, 19, "SL4X tail")
    mcc = int.from_bytes(body[pos:pos + 2], "big")
    p.add_lbs({"mcc": mcc & 0x7FFF, "mnc": int.from_bytes(body[pos + 2:pos + 4], "big"),
               "lac": int.from_bytes(body[pos + 4:pos + 6], "big"),
               "cell_id": int.from_bytes(body[pos + 6:pos + 14], "big")})
    pos += 14
    p.status["acc"] = body[pos] > 0
    p.extras.update(event=body[pos + 1], reupload=body[pos + 2] > 0)
    p.extras["altitude"] = int.from_bytes(body[pos + 3:pos + 5], "big", signed=True)


def _wetrust_tail(p: Packet, pos: int) -> None:
    """0x12 with a 36-byte body (WeTrust): LBS, odometer, driver card (length + ASCII), alarm flag,
    card status, driving time WORD."""
    body = p.body
    cell, pos = read_lbs(body, pos)
    p.add_lbs(cell)
    need(body, pos, 5, "WeTrust tail")
    p.extras["odometer"] = int.from_bytes(body[pos:pos + 4], "big")
    size = body[pos + 4]
    pos += 5
    need(body, pos, size + 4, "WeTrust tail")
    p.extras["driver_card"] = body[pos:pos + size].decode("ascii", "replace").strip()
    pos += size
    if body[pos]:
        p.alarms.append("general")
    p.extras["card_status"] = body[pos + 1]
    p.extras["driving_time"] = int.from_bytes(body[pos + 2:pos + 4], "big")


# (protocol, body length) -> reader of what follows the GPS block.
LOCATION_FORMS: dict[tuple[int, int], Callable[[Packet, int], None]] = {
    (0x12, 31): _vxt01_tail,
    (0x12, 36): _wetrust_tail,
    (0x12, 38): _s5_tail,
    (0x22, 42): _seeworld_tail,
    (0x31, 37): _sl4x_tail,
}
