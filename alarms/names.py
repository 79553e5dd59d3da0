"""Canonical alarm vocabulary: names, JT/T 808 bit meanings, Traccar and GT06 mappings.

Names are snake_case of Traccar's alarm vocabulary, plus the JT/T 808 meanings Traccar folds
away (design.md, "Canonical alarm names"). Decoders and feeds map into these names; nothing
downstream ever sees a protocol-specific alarm code.
"""

from __future__ import annotations

import re

# JT/T 808-2013/2019 alarm DWORD bit -> canonical name (decoded by the standard's meaning).
JT808_ALARM_BITS: dict[int, str] = {
    0: "sos",
    1: "overspeed",
    2: "fatigue_driving",
    3: "dangerous_driving",
    4: "gnss_fault",
    5: "gnss_antenna_cut",
    6: "gnss_antenna_short",
    7: "low_voltage",
    8: "power_cut",
    9: "display_fault",
    10: "tts_fault",
    11: "camera_fault",
    12: "ic_card_fault",
    13: "overspeed_warning",
    14: "fatigue_warning",
    15: "driving_violation",
    16: "tyre_pressure",
    17: "blind_zone",
    18: "daily_driving_limit",
    19: "parking_timeout",
    20: "geofence",
    21: "route",
    22: "route_time",
    23: "route_deviation",
    24: "vss_fault",
    25: "fuel_abnormal",
    26: "vehicle_stolen",
    27: "illegal_ignition",
    28: "illegal_movement",
    29: "collision",
    30: "rollover",
    31: "illegal_door_open",
}

# Bits the terminal sets once and clears after the platform's answer (jt808.md §5.1); every
# other bit is a level alarm, held while the condition lasts.
JT808_ACK_CLEARED_BITS = frozenset({0, 20, 21, 22, 27, 28, 31})

# Bits that a 0x8203 manual alarm confirmation can clear (jt808.md §5.3).
JT808_CONFIRMABLE_BITS = frozenset({0, 3, 20, 21, 22, 27, 28})

# GT06 alarm byte -> canonical name (gt06.md §4.6; newer Concox meanings where they differ).
GT06_ALARM_CODES: dict[int, str] = {
    0x01: "sos",
    0x02: "power_cut",
    0x03: "vibration",
    0x04: "geofence_enter",
    0x05: "geofence_exit",
    0x06: "overspeed",
    0x09: "tow",
    0x0C: "power_on",
    0x0E: "low_battery",
    0x0F: "low_battery",
    0x11: "power_off",
    0x13: "tampering",
    0x14: "door",
    0x18: "removing",
    0x19: "low_battery",
    0x23: "fall_down",
    0x25: "tampering",
    0x29: "acceleration",
    0x2A: "cornering",
    0x2B: "cornering",
    0x2C: "accident",
    0x30: "braking",
    0x32: "tampering",
}

# Alarms that are emergencies unless a rule says otherwise (design.md).
DEFAULT_EMERGENCY = frozenset({"sos", "collision", "rollover", "vehicle_stolen", "accident"})

# Traccar's vocabulary (Position.ALARM_*), so Traccar-forwarded alarms map 1:1.
TRACCAR_ALARMS = frozenset({
    "general", "sos", "vibration", "movement", "lowspeed", "overspeed", "fallDown",
    "lowPower", "lowBattery", "fault", "powerOff", "powerOn", "door", "lock", "unlock",
    "geofence", "geofenceEnter", "geofenceExit", "gpsAntennaCut", "accident", "tow", "idle",
    "highRpm", "hardAcceleration", "hardBraking", "hardCornering", "laneChange",
    "fatigueDriving", "powerCut", "powerRestored", "jamming", "temperature", "parking",
    "bonnet", "footBrake", "fuelLeak", "tampering", "removing", "acceleration", "braking",
    "cornering",
})

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_CANONICAL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def snake_case(name: str) -> str:
    """``geofenceEnter`` -> ``geofence_enter``; already snake_case names are kept."""
    return _CAMEL.sub("_", name.strip()).lower()


def from_traccar(value: str) -> list[str]:
    """Map Traccar's ``alarm`` attribute (one name or several joined by commas) to canonical names.

    Unknown names are kept in snake_case form rather than dropped: an alarm is never lost
    because its vocabulary is newer than ours.
    """
    names = []
    for part in value.split(","):
        part = part.strip()
        if part:
            name = snake_case(part)
            if name not in names:
                names.append(name)
    return names


def is_canonical(name: str) -> bool:
    return bool(_CANONICAL.match(name))


def jt808_alarm_names(word: int) -> list[str]:
    """Canonical names for every bit set in a JT/T 808 alarm DWORD, lowest bit first."""
    return [JT808_ALARM_BITS[bit] for bit in range(32) if word >> bit & 1]
