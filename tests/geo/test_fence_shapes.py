"""Fence shapes: exact membership for circles, concave/antimeridian/polar polygons and corridors."""

from __future__ import annotations

import math

import pytest

from geo.fence_shapes import (
    CORRIDOR_PIECE_M,
    CircleFence,
    CorridorFence,
    PolygonFence,
    compile_fence,
)
from geo.geodesy import GEOD, destination, inverse

# A U opening north, about 2.2 x 3.3 km near Shanghai: arms at lon 121.40-121.41 and 121.42-121.43.
U_RING = (
    (31.20, 121.40), (31.20, 121.43), (31.23, 121.43), (31.23, 121.42),
    (31.21, 121.42), (31.21, 121.41), (31.23, 121.41), (31.23, 121.40),
)


def test_circle_boundary_is_exact_to_centimetres():
    fence = compile_fence(CircleFence(1, "depot", None, 31.23, 121.47, 500.0))
    for bearing in range(0, 360, 15):
        assert fence.covers(*destination(31.23, 121.47, bearing, 499.99))
        assert not fence.covers(*destination(31.23, 121.47, bearing, 500.01))
        assert fence.covers(*destination(31.23, 121.47, bearing, 500.01), margin_m=0.05)


@pytest.mark.parametrize("lat, lon", [(0.0, 179.999), (89.99, 0.0), (-89.99, 77.0), (45.0, -180.0)])
def test_circle_anywhere(lat, lon):
    fence = compile_fence(CircleFence(1, "c", None, lat, lon, 20_000.0))
    for bearing in range(0, 360, 30):
        assert fence.covers(*destination(lat, lon, bearing, 19_999.0))
        assert not fence.covers(*destination(lat, lon, bearing, 20_001.0))


def test_concave_u_polygon():
    fence = compile_fence(PolygonFence("u", "yard", None, U_RING))
    assert fence.covers(31.22, 121.405)  # left arm
    assert fence.covers(31.22, 121.425)  # right arm
    assert fence.covers(31.205, 121.415)  # the bottom of the U
    assert not fence.covers(31.22, 121.415)  # the notch
    assert not fence.covers(31.235, 121.405)  # above the left arm
    assert not fence.covers(31.22, 121.435)


def test_polygon_crossing_the_antimeridian():
    ring = ((-1.0, 179.0), (-1.0, -179.0), (1.0, -179.0), (1.0, 179.0))
    fence = compile_fence(PolygonFence(7, "dateline", None, ring))
    for lon in (179.5, 180.0, -180.0, -179.5, 539.5 - 360.0):
        assert fence.covers(0.0, lon), lon
    assert not fence.covers(0.0, 178.5)
    assert not fence.covers(0.0, -178.5)
    assert not fence.covers(0.0, 0.0)  # the "other way round" the globe is not inside
    # Same fence given with continuous longitudes past 180.
    same = compile_fence(PolygonFence(8, "dateline", None, ((-1.0, 179.0), (-1.0, 181.0), (1.0, 181.0), (1.0, 179.0))))
    assert same.covers(0.0, -179.5) and not same.covers(0.0, -178.5)


def test_polygon_around_the_north_pole():
    ring = ((85.0, 0.0), (85.0, 90.0), (85.0, 180.0), (85.0, -90.0))
    fence = compile_fence(PolygonFence(9, "arctic", None, ring))
    assert fence.covers(90.0, 0.0)
    assert fence.covers(88.0, 45.0) and fence.covers(88.0, -135.0)
    assert not fence.covers(84.0, 45.0)
    assert fence.parts[0].boxes == [(-180.0, fence.parts[0].boxes[0][1], 180.0, 90.0)]


def _offset_from_segment(start, end, offset_m):
    """Point ``offset_m`` to the left of the geodesic midpoint of a segment (the perpendicular foot)."""
    (lat1, lon1), (lat2, lon2) = start, end
    mid = GEOD.inv_intermediate(lon1, lat1, lon2, lat2, npts=1, return_back_azimuth=True)
    mlat, mlon = mid.lats[0], mid.lons[0]
    heading = inverse(mlat, mlon, lat2, lon2).initial_bearing_deg
    return destination(mlat, mlon, heading - 90.0, offset_m)


def test_corridor_width_is_exact_across_the_route():
    path = ((31.00, 121.00), (31.05, 121.08), (31.02, 121.15))
    fence = compile_fence(CorridorFence("r", "route", None, path, 200.0))
    for start, end in zip(path, path[1:], strict=False):
        for side in (1, -1):
            assert fence.covers(*_offset_from_segment(start, end, side * 99.9))
            assert not fence.covers(*_offset_from_segment(start, end, side * 100.1))
    # Round ends: 99.9 m beyond the last point along the route's direction is still inside.
    heading = inverse(31.05, 121.08, 31.02, 121.15).final_bearing_deg
    assert fence.covers(*destination(31.02, 121.15, heading, 99.9))
    assert not fence.covers(*destination(31.02, 121.15, heading, 100.1))


def test_long_corridor_is_cut_into_pieces_without_gaps():
    start, end = (30.0, 110.0), (31.5, 111.8)  # about 240 km
    fence = compile_fence(CorridorFence("long", "highway", None, (start, end), 60.0))
    length = inverse(*start, *end).distance_m
    assert len(fence.parts) >= math.ceil(length / CORRIDOR_PIECE_M)
    line = GEOD.inv_intermediate(start[1], start[0], end[1], end[0], del_s=997.0, return_back_azimuth=True)
    for lat, lon in zip(line.lats, line.lons, strict=True):
        assert fence.covers(lat, lon)
    assert fence.covers(*_offset_from_segment(start, end, 29.0))
    assert not fence.covers(*_offset_from_segment(start, end, 31.0))


def test_corridor_across_the_antimeridian_and_single_point():
    fence = compile_fence(CorridorFence(1, "ferry", None, ((0.0, 179.9), (0.0, -179.9)), 300.0))
    assert fence.covers(0.0009, 180.0) and fence.covers(-0.0009, -180.0)
    assert not fence.covers(0.0, 0.0) and not fence.covers(0.002, 180.0)
    dot = compile_fence(CorridorFence(2, "stop", None, ((10.0, 20.0),), 100.0))
    assert dot.covers(*destination(10.0, 20.0, 33.0, 49.0))
    assert not dot.covers(*destination(10.0, 20.0, 33.0, 51.0))


@pytest.mark.parametrize(
    "make",
    [
        lambda: CircleFence(1, "c", None, 31.0, 121.0, 0.0),
        lambda: CircleFence(1, "c", None, 31.0, 121.0, -5.0),
        lambda: CircleFence(1, "c", None, 31.0, 121.0, float("nan")),
        lambda: CircleFence(1, "c", None, 31.0, 121.0, True),
        lambda: CircleFence(1, "c", None, 31.0, 121.0, 2_000_000.0),
        lambda: CircleFence(1, "c", None, 91.0, 121.0, 10.0),
        lambda: CircleFence(1.5, "c", None, 31.0, 121.0, 10.0),
        lambda: CircleFence(True, "c", None, 31.0, 121.0, 10.0),
        lambda: CircleFence(1, "c", 2.5, 31.0, 121.0, 10.0),
        lambda: PolygonFence(1, "p", None, ((0, 0), (0, 1), (0, 0))),
        lambda: PolygonFence(1, "p", None, ((0, 0), (0, 1), (1, 1, 1))),
        lambda: PolygonFence(1, "p", None, 5),
        lambda: PolygonFence(1, "p", None, ((0, 0), (0, "x"), (1, 1))),
        lambda: CorridorFence(1, "r", None, (), 10.0),
        lambda: CorridorFence(1, "r", None, ((0, 0), (0, 1)), 0),
    ],
)
def test_bad_definitions_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_unusable_polygons_raise_value_error_on_compile():
    bowtie = PolygonFence("bow", "p", None, ((0, 0), (1, 1), (1, 0), (0, 1)))
    with pytest.raises(ValueError, match="not a simple polygon"):
        compile_fence(bowtie)
    huge = PolygonFence("huge", "p", None, ((0, 0), (0, 30), (30, 30), (30, 0)))
    with pytest.raises(ValueError, match="split it"):
        compile_fence(huge)
    with pytest.raises(ValueError):
        compile_fence("not a fence")  # type: ignore[arg-type]


def test_definitions_are_normalised():
    fence = PolygonFence(1, "p", None, [[0, 0], [0, 190], [1, 190], [0, 0]])
    assert fence.ring == ((0.0, 0.0), (0.0, -170.0), (1.0, -170.0))
    assert CircleFence(1, "c", 5, 0, 200, 10).lon == -160.0
