"""GT06 packets that locate a terminal by the cells and WiFi networks it hears, not by GPS.

Multi-cell LBS lists (0x18/0x24/0x28/0x2C/0x2E/0xA1/0xA2), WiFi scans (0x17/0x69, whose length
byte holds the WiFi count and which carry no serial or CRC) and the WiFi list 0xF3, read the way
traccar reads them. They become Reports without a fix: ``extras["cells"]``/``extras["wifi"]``
for a later geolocation step, and the first cell's ids in ``mcc``/``mnc``/``lac``/``cell_id``.
Where 0x24 and 0xA2 have a GPS form (by body length), ``variants`` decodes it instead.
"""

from __future__ import annotations

from typing import Any

from ingest.gt06.blocks import need, read_bcd_time, read_time
from ingest.gt06.packet import Decoded, Packet

WIDE_LBS = frozenset({0xA1, 0xA2})  # LAC 4 bytes, cell ID 8 bytes
WITH_WIFI = frozenset({0x18, 0x2C, 0xA2})


def cell_list(p: Packet) -> Decoded:
    """Date, MCC, MNC, 7 cells (LAC, cell ID, RSSI), timing advance, [WiFi count + 7-byte entries].

    The WANWAY S20 form of 0x24 (44-byte body) puts the timing advance first and counts its cells.
    """
    body, proto = p.body, p.protocol
    time = read_time(body, 0, p.utc_offset)
    wanway = proto == 0x24 and len(body) == 44
    pos = 7 if wanway else 6
    need(body, pos, 3, "cell list")
    mcc = int.from_bytes(body[pos:pos + 2], "big")
    pos += 2
    mnc_size = 2 if mcc & 0x8000 else 1
    mnc = int.from_bytes(body[pos:pos + mnc_size], "big")
    pos += mnc_size
    count = 7
    if wanway:
        need(body, pos, 1, "cell count")
        count, pos = body[pos], pos + 1
    lac_size, cid_size = (4, 8) if proto in WIDE_LBS else (2, 3)
    cells = []
    for _ in range(count):
        need(body, pos, lac_size + cid_size + 1, "cell list")
        lac = int.from_bytes(body[pos:pos + lac_size], "big")
        cid = int.from_bytes(body[pos + lac_size:pos + lac_size + cid_size], "big")
        rssi = body[pos + lac_size + cid_size]
        pos += lac_size + cid_size + 1
        if lac:
            cells.append({"mcc": mcc & 0x7FFF, "mnc": mnc, "lac": lac, "cell_id": cid, "rssi": -rssi})
    _add_cells(p, cells)
    if not wanway:
        pos += 1  # timing advance
    if proto in WITH_WIFI and len(body) > pos:
        p.extras["wifi"] = wifi_entries(body, pos + 1, body[pos], with_rssi=True)
    return p.decoded("location", p.report(time))


def _add_cells(p: Packet, cells: list[dict[str, Any]]) -> None:
    p.extras["cells"] = cells
    if cells:
        p.extras.update({k: cells[0][k] for k in ("mcc", "mnc", "lac", "cell_id")})


def wifi_entries(data: bytes, pos: int, count: int, *, with_rssi: bool,
                 skip: int = 0) -> list[dict[str, Any]]:
    entries = []
    size = skip + 6 + (1 if with_rssi else 0)
    for _ in range(count):
        need(data, pos, size, "WiFi list")
        entry: dict[str, Any] = {"mac": ":".join(f"{b:02x}" for b in data[pos + skip:pos + skip + 6])}
        if with_rssi:
            entry["rssi"] = -data[pos + skip + 6]
        entries.append(entry)
        pos += size
    return entries


def wifi_scan(p: Packet) -> Decoded:
    """0x17/0x69: BCD time, WiFi entries (count in the length byte), then a cell list. No serial/CRC."""
    frame = p.frame
    data = frame.payload
    time = read_bcd_time(data, 0)
    wifi = wifi_entries(data, 6, frame.raw[2], with_rssi=True)
    pos = 6 + 7 * len(wifi)
    need(data, pos, 4, "cell list")
    count, mcc, mnc = data[pos], int.from_bytes(data[pos + 1:pos + 3], "big"), data[pos + 3]
    pos += 4
    cells = []
    for _ in range(count):
        need(data, pos, 5, "cell list")
        cells.append({"mcc": mcc, "mnc": mnc, "lac": int.from_bytes(data[pos:pos + 2], "big"),
                      "cell_id": int.from_bytes(data[pos + 2:pos + 4], "big"), "rssi": -data[pos + 4]})
        pos += 5
    _add_cells(p, cells)
    p.extras["wifi"] = wifi
    # These terminals expect their time echoed back in a frame without serial or CRC.
    reply = b"\x78\x78\x00" + bytes((p.protocol,)) + data[:6] + b"\r\n"
    return p.decoded("location", p.report(time), reply)


def wifi_list(p: Packet) -> Decoded:
    """0xF3: binary time, WiFi count, entries of 2 reserved bytes + MAC."""
    time = read_time(p.body, 0, p.utc_offset)
    need(p.body, 6, 1, "WiFi count")
    p.extras["wifi"] = wifi_entries(p.body, 7, p.body[6], with_rssi=False, skip=2)
    return p.decoded("location", p.report(time))
