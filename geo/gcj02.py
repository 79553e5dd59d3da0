"""WGS-84 <-> GCJ-02 ("Mars coordinates") for positions from and to Chinese map platforms.

Owns the one decision of where GCJ-02 applies and wraps ``prcoords`` (CC0/GPLv3, the Krasovsky-based
obfuscation as published by eviltransform and others).  Watchline stores and computes in WGS-84 only;
these conversions are for the edges: GPS platforms that forward GCJ-02, and map tiles (AMap, Tencent)
that expect it.

Where it applies: the rectangle every published implementation uses (lat 0.8293..55.8271,
lon 72.004..137.8347).  That box is a superset of mainland China (it also holds e.g. Hanoi and Seoul);
we keep it because the data we exchange was produced with that same test, and a point converted with
a different region would be shifted by the full ~500 m offset.  Outside the box GCJ-02 equals WGS-84.

Inverse accuracy: ``gcj02_to_wgs84`` iterates the forward transform to a fixed point (Caijun's method
in ``prcoords.gcj_wgs_bored``); the round trip is within ~5 mm (its stopping rule), far below GPS noise.
"""

from __future__ import annotations

import prcoords

from geo.geodesy import check_position

_SOUTH, _NORTH = 0.8293, 55.8271
_WEST, _EAST = 72.004, 137.8347


def in_gcj02_region(lat: float, lon: float) -> bool:
    """True where Chinese platforms apply the GCJ-02 offset (the conventional rectangle)."""
    return _SOUTH <= lat <= _NORTH and _WEST <= lon <= _EAST


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 ``(lat, lon)`` of a WGS-84 position; unchanged outside the GCJ-02 region."""
    lat, lon = check_position(lat, lon)
    if not in_gcj02_region(lat, lon):
        return lat, lon
    out = prcoords.wgs_gcj((lat, lon), False)
    return float(out.lat), float(out.lon)


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """WGS-84 ``(lat, lon)`` of a GCJ-02 position (iterated to millimetres); unchanged outside."""
    lat, lon = check_position(lat, lon)
    if not in_gcj02_region(lat, lon):
        return lat, lon
    out = prcoords.gcj_wgs_bored((lat, lon), False)
    return float(out.lat), float(out.lon)
