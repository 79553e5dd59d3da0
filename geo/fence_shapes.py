"""Geofence definitions (circle, polygon, route corridor) and their compiled, exactly testable form.

Owns what "inside a fence" means:
- circle: geodesic distance from the centre <= radius (exact, pyproj);
- polygon: inside the ring drawn with straight edges in the fence's own azimuthal-equidistant frame
  (centred on the ring), i.e. edges are geodesics to within centimetres for city-sized fences; concave
  rings, rings crossing the antimeridian and rings around a pole are all fine;
- corridor: distance from the route polyline <= width / 2, the route cut into <= 25 km pieces, each
  measured in its own local frame (so long routes stay metre-exact and get tight index boxes).
A compiled fence is a list of parts, each with the lon/lat boxes the index files it under and a
``covers(lat, lon, margin_m)`` test; ``margin_m`` widens the fence outward (hysteresis on exit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import shapely

from geo.geodesy import GEOD, LocalFrame, check_position, mean_position

FenceId = int | str
ScopeId = int | str

MAX_FENCE_RADIUS_M = 1_000_000.0  # beyond this, straight local edges stray too far from geodesics
CORRIDOR_PIECE_M = 25_000.0  # a corridor piece measured in one local frame
_DENSIFY_M = 1_000.0  # route vertices at most this far apart, so local segments follow the geodesic
_QUAD_SEGS = 16  # buffer polygons (boxes only) are inside the true buffer by r * (1 - cos(pi / 64))


def _check_id_scope(fence_id: object, scope: object) -> None:
    if isinstance(fence_id, bool) or not isinstance(fence_id, int | str):
        raise ValueError(f"fence id must be an int or str, got {fence_id!r}")
    if scope is not None and (isinstance(scope, bool) or not isinstance(scope, int | str)):
        raise ValueError(f"fence {fence_id!r}: scope must be an owner id (int or str) or None")


def _check_points(fence_id: FenceId, points: object, what: str) -> tuple[tuple[float, float], ...]:
    try:
        pairs = [tuple(p) for p in points]  # type: ignore[union-attr]
    except TypeError:
        raise ValueError(f"fence {fence_id!r}: {what} must be a sequence of (lat, lon) pairs") from None
    out = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"fence {fence_id!r}: {what} has a point that is not a (lat, lon) pair")
        try:
            out.append(check_position(*pair))
        except ValueError as exc:
            raise ValueError(f"fence {fence_id!r}: {what}: {exc}") from None
    return tuple(out)


def _check_length(fence_id: FenceId, value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"fence {fence_id!r}: {what} must be a positive number of metres, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class CircleFence:
    id: FenceId
    name: str
    scope: ScopeId | None  # owner id, or None for every vehicle
    lat: float
    lon: float
    radius_m: float

    def __post_init__(self) -> None:
        _check_id_scope(self.id, self.scope)
        try:
            lat, lon = check_position(self.lat, self.lon)
        except ValueError as exc:
            raise ValueError(f"fence {self.id!r}: centre: {exc}") from None
        object.__setattr__(self, "lat", lat)
        object.__setattr__(self, "lon", lon)
        radius = _check_length(self.id, self.radius_m, "radius_m")
        if radius > MAX_FENCE_RADIUS_M:
            raise ValueError(f"fence {self.id!r}: radius over {MAX_FENCE_RADIUS_M / 1000:.0f} km")
        object.__setattr__(self, "radius_m", radius)


@dataclass(frozen=True, slots=True)
class PolygonFence:
    id: FenceId
    name: str
    scope: ScopeId | None
    ring: tuple[tuple[float, float], ...]  # (lat, lon) WGS-84 vertices; closing vertex optional

    def __post_init__(self) -> None:
        _check_id_scope(self.id, self.scope)
        ring = _check_points(self.id, self.ring, "ring")
        if len(ring) > 1 and ring[0] == ring[-1]:
            ring = ring[:-1]
        if len(set(ring)) < 3:
            raise ValueError(f"fence {self.id!r}: a polygon needs at least 3 distinct vertices")
        object.__setattr__(self, "ring", ring)


@dataclass(frozen=True, slots=True)
class CorridorFence:
    id: FenceId
    name: str
    scope: ScopeId | None
    path: tuple[tuple[float, float], ...]  # (lat, lon) route polyline
    width_m: float  # full width; a position belongs when within width / 2 of the route

    def __post_init__(self) -> None:
        _check_id_scope(self.id, self.scope)
        path = _check_points(self.id, self.path, "path")
        if not path:
            raise ValueError(f"fence {self.id!r}: a corridor needs at least one route point")
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "width_m", _check_length(self.id, self.width_m, "width_m"))


Fence = CircleFence | PolygonFence | CorridorFence
Box = tuple[float, float, float, float]  # (min_lon, min_lat, max_lon, max_lat) inside [-180, 180]


class FencePart(Protocol):
    boxes: list[Box]

    def covers(self, lat: float, lon: float, margin_m: float = 0.0) -> bool: ...


class _CirclePart:
    __slots__ = ("lat", "lon", "radius_m", "boxes")

    def __init__(self, fence: CircleFence) -> None:
        self.lat, self.lon, self.radius_m = fence.lat, fence.lon, fence.radius_m
        frame = LocalFrame(fence.lat, fence.lon)
        pad = fence.radius_m * (1 - math.cos(math.pi / (4 * _QUAD_SEGS))) + 1.0
        self.boxes = frame.envelope(frame.circle(fence.radius_m, 4 * _QUAD_SEGS), pad).canonical_parts()

    def covers(self, lat: float, lon: float, margin_m: float = 0.0) -> bool:
        return GEOD.inv(self.lon, self.lat, lon, lat)[2] <= self.radius_m + margin_m


class _LocalPart:
    """A shape in its own local frame: covered when within ``reach_m`` (+ margin) of it."""

    __slots__ = ("frame", "shape", "reach_m", "boxes")

    def __init__(self, frame: LocalFrame, shape: shapely.Geometry, reach_m: float) -> None:
        self.frame, self.shape, self.reach_m = frame, shape, reach_m
        # The box of a line widened by ``reach`` is the box of the line padded by ``reach``.
        self.boxes = frame.envelope(shape, reach_m + 1.0).canonical_parts()
        shapely.prepare(shape)

    def covers(self, lat: float, lon: float, margin_m: float = 0.0) -> bool:
        x, y = self.frame.point_to_local(lat, lon)
        reach = self.reach_m + margin_m
        if reach <= 0:
            return bool(shapely.intersects_xy(self.shape, x, y))
        # The geometry method is ~5x cheaper than the shapely.dwithin ufunc for one point.
        return bool(self.shape.distance(shapely.Point(x, y)) <= reach)


@dataclass(frozen=True, slots=True)
class CompiledFence:
    fence: Fence
    parts: tuple[FencePart, ...]

    def covers(self, lat: float, lon: float, margin_m: float = 0.0) -> bool:
        return any(part.covers(lat, lon, margin_m) for part in self.parts)


def _polygon_part(fence: PolygonFence) -> _LocalPart:
    lats = np.array([p[0] for p in fence.ring])
    lons = np.array([p[1] for p in fence.ring])
    try:
        frame = LocalFrame(*mean_position(lats, lons))
    except ValueError as exc:
        raise ValueError(f"fence {fence.id!r}: {exc}") from None
    xs, ys = frame.to_local(lats, lons)
    if float(np.hypot(xs, ys).max()) > MAX_FENCE_RADIUS_M:
        raise ValueError(
            f"fence {fence.id!r}: polygon reaches more than {MAX_FENCE_RADIUS_M / 1000:.0f} km from its "
            "centre; split it into smaller fences"
        )
    polygon = shapely.Polygon(np.column_stack([xs, ys]))
    if not polygon.is_valid:
        reason = shapely.is_valid_reason(polygon)
        raise ValueError(f"fence {fence.id!r}: ring is not a simple polygon ({reason})")
    return _LocalPart(frame, polygon, 0.0)


def _densified_route(path: tuple[tuple[float, float], ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Route vertices at most ``_DENSIFY_M`` apart along geodesics, with cumulative length."""
    lats, lons = [path[0][0]], [path[0][1]]
    for (lat1, lon1), (lat2, lon2) in zip(path, path[1:], strict=False):
        length = GEOD.inv(lon1, lat1, lon2, lat2)[2]
        if length > _DENSIFY_M:
            mid = GEOD.inv_intermediate(
                lon1, lat1, lon2, lat2, npts=int(length // _DENSIFY_M), return_back_azimuth=True
            )
            lats.extend(mid.lats)
            lons.extend(mid.lons)
        lats.append(lat2)
        lons.append(lon2)
    lat_a, lon_a = np.array(lats), np.array(lons)
    steps = GEOD.inv(lon_a[:-1], lat_a[:-1], lon_a[1:], lat_a[1:])[2] if len(lat_a) > 1 else np.zeros(0)
    return lat_a, lon_a, np.concatenate([[0.0], np.cumsum(steps)])


def _corridor_parts(fence: CorridorFence) -> list[_LocalPart]:
    lats, lons, along = _densified_route(fence.path)
    half = fence.width_m / 2.0
    parts: list[_LocalPart] = []
    start = 0
    while True:
        # Pieces share their boundary vertex, so the union is the whole route with no gap.
        end = int(np.searchsorted(along, along[start] + CORRIDOR_PIECE_M, side="right")) - 1
        end = max(end, start + 1) if start + 1 < len(along) else start
        mid = int(np.searchsorted(along, (along[start] + along[end]) / 2.0))
        frame = LocalFrame(lats[mid], lons[mid])
        xs, ys = frame.to_local(lats[start : end + 1], lons[start : end + 1])
        shape = shapely.Point(xs[0], ys[0]) if end == start else shapely.LineString(np.column_stack([xs, ys]))
        parts.append(_LocalPart(frame, shape, half))
        if end >= len(along) - 1:
            return parts
        start = end


def compile_fence(fence: Fence) -> CompiledFence:
    """The exact tests and index boxes of a fence; ``ValueError`` with the reason if it is unusable."""
    if isinstance(fence, CircleFence):
        parts: list[FencePart] = [_CirclePart(fence)]
    elif isinstance(fence, PolygonFence):
        parts = [_polygon_part(fence)]
    elif isinstance(fence, CorridorFence):
        parts = list(_corridor_parts(fence))
    else:
        raise ValueError(f"not a fence: {fence!r}")
    return CompiledFence(fence, tuple(parts))
