"""Geo core: pure functions and in-memory indexes, no database, no I/O, no reactor.

- ``geodesy``: WGS-84 geodesics (pyproj), position validation, local azimuthal-equidistant frames.
- ``gcj02``: WGS-84 <-> GCJ-02 for Chinese map platforms.
- ``fence_shapes`` / ``fences``: circle, polygon and corridor geofences; ``FenceIndex`` lookups and
  ``FenceTracker`` enter/exit events.
- ``nearest`` (with ``sphere_grid``): ``RescueFleetIndex``, the k nearest available rescue trucks.
"""
