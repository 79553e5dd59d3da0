"""Vendor additional items of the 0x0200 location report from electronic locks and seals
(padlocks, container seals, Jointech locks): lock commands and results, lock events with the
driver's card, seal and padlock records, string-cut status, the ``*M00`` lock status text.

Same conventions as ``vendor_items`` (Traccar's meanings, snake_case names); each function
takes the item value and a ``Found`` and says whether it decoded the value.
"""

from __future__ import annotations

from ingest.jt808.fields import Found, byte, need, text, u16, u32


def lock_command(value: bytes, found: Found) -> bool:
    """0x0B: command, then a card DWORD (5–6 bytes) or a 6-character password (7+), then the
    unlock result when the length is even."""
    extras, pos = found.extras, 1
    extras["lock_command"] = byte(value)
    if 5 <= len(value) <= 6:
        extras["lock_card"] = u32(value, 1)
        pos = 5
    elif len(value) >= 7:
        extras["lock_password"] = text(value[1:7])
        pos = 7
    if len(value) % 2 == 0:
        extras["unlock_result"] = byte(value, pos)
    return True


def mode_or_lock(value: bytes, found: Found) -> bool:
    """0x33: a mode byte, or a ``*M00,`` lock status text holding the battery in 1/100 V."""
    if len(value) == 1:
        found.extras["mode"] = value[0]
        return True
    line = text(value)
    if not line.startswith("*M00"):
        return False
    found.extras["battery"] = int(line[8:15][2:5]) / 100
    return True


def lock_event(value: bytes, found: Found) -> bool:
    """0x60: event WORD; lock events 0x61–0x66 carry a lock id and an 8-character driver id."""
    event = u16(value)
    found.extras["event"] = event
    if 0x61 <= event <= 0x66:
        need(value, 8, 8, "0x60 driver id")
        found.extras["driver_unique_id"] = text(value[8:16])
    return True


def seal_locks(value: bytes, found: Found) -> bool:
    """0x63: 11-byte lock records (id, battery in mV, seal flag, state, RSSI)."""
    for n in range(len(value) // 11):
        pos = 11 * n
        found.extras[f"lock{n + 1}_id"] = value[pos:pos + 6].hex()
        found.extras[f"lock{n + 1}_battery"] = u16(value, pos + 6) / 1000
        found.extras[f"lock{n + 1}_seal"] = value[pos + 8] == 0x31
    return bool(value) and len(value) % 11 == 0


def padlocks(value: bytes, found: Found) -> bool:
    """0xD5: battery in 1/100 V, or a count then 13-byte lock records (id, card, battery %, status)."""
    if len(value) == 2:
        found.extras["battery"] = u16(value) / 100
        return True
    for n in range(byte(value)):
        pos = 1 + 13 * n
        need(value, pos, 13, "0xD5 lock")
        lock = f"lock{n + 1}"
        found.extras[f"{lock}_id"] = value[pos:pos + 5].hex()
        found.extras[f"{lock}_card"] = value[pos + 5:pos + 10].hex()
        found.extras[f"{lock}_battery"] = value[pos + 10]
        found.extras[f"{lock}_locked"] = not u16(value, pos + 11) & 0x20
    return True


def string_lock(value: bytes, found: Found) -> bool:
    """0xDA: cut count, then device status (b0 string, b2 motion, b3 cover)."""
    status = byte(value, 2)
    found.extras.update(string=bool(status & 1), motion=bool(status & 4), cover=bool(status & 8))
    return True
