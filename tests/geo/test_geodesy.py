"""Geodesy: published geodesic reference values, the curvature bounds, and the local frame."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Proj

from geo.geodesy import (
    MAX_CURVATURE_RADIUS_M,
    MIN_CURVATURE_RADIUS_M,
    GeoBox,
    LocalFrame,
    check_position,
    chord_to_angle,
    destination,
    destinations,
    distance_m,
    distances_m,
    inverse,
    mean_position,
    unit_normals,
)

# From GeographicLib's own test suite (Karney): lat1, lon1, azi1, lat2, lon2, azi2, s12.
KARNEY_CASES = [
    (35.60777, -139.44815, 111.098748429560326, -11.17491, -69.95921, 129.289270889708762, 8935244.5604818305),
    (55.52454, 106.05087, 22.020059880982801, 77.03196, 197.18234, 109.112041110671519, 4105086.1713924406),
    (-21.97856, 142.59065, -32.44456876433189, 41.84138, 98.56635, -41.84359951440466, 8394328.894657671),
    # The Geodesic class documentation example (Wellington to Salamanca, nearly antipodal).
    (-41.32, 174.81, 161.06766998615882, 40.96, -5.50, 18.825195123248392, 19959679.26735382),
]

latitudes = st.floats(-90, 90, allow_nan=False)
longitudes = st.floats(-180, 180, allow_nan=False)


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize("lat1, lon1, azi1, lat2, lon2, azi2, s12", KARNEY_CASES)
def test_inverse_matches_karney(lat1, lon1, azi1, lat2, lon2, azi2, s12):
    solution = inverse(lat1, lon1, lat2, lon2)
    assert solution.distance_m == pytest.approx(s12, abs=1e-6)
    assert _angle_diff(solution.initial_bearing_deg, azi1) < 1e-9
    assert _angle_diff(solution.final_bearing_deg, azi2) < 1e-9
    assert distance_m(lat1, lon1, lat2, lon2) == solution.distance_m


@pytest.mark.parametrize("lat1, lon1, azi1, lat2, lon2, azi2, s12", KARNEY_CASES)
def test_destination_matches_karney(lat1, lon1, azi1, lat2, lon2, azi2, s12):
    lat, lon = destination(lat1, lon1, azi1, s12)
    assert lat == pytest.approx(lat2, abs=1e-9)
    assert _angle_diff(lon, lon2) < 1e-9


def test_jfk_to_lhr():
    # GeographicLib's GeodSolve example: JFK (40.6N 73.8W) to LHR (51.6N 0.5W) is 5551.759400 km.
    assert distance_m(40.6, -73.8, 51.6, -0.5) == pytest.approx(5551759.400, abs=1e-3)


def test_vectorised_forms_match_scalar():
    lats = np.array([51.6, -11.17491, 0.0])
    lons = np.array([-0.5, -69.95921, 179.5])
    many = distances_m(40.6, -73.8, lats, lons)
    assert many.tolist() == [distance_m(40.6, -73.8, a, b) for a, b in zip(lats, lons, strict=True)]
    out_lats, out_lons = destinations(10.0, 170.0, np.array([0.0, 90.0]), np.array([1000.0, 2000.0]))
    for i, (bearing, dist) in enumerate([(0.0, 1000.0), (90.0, 2000.0)]):
        assert (out_lats[i], out_lons[i]) == destination(10.0, 170.0, bearing, dist)


@pytest.mark.parametrize(
    "lat, lon", [(float("nan"), 0), (0, float("inf")), (90.5, 0), (-91, 0), (0, 400), ("x", 1), (None, 2)]
)
def test_check_position_rejects(lat, lon):
    with pytest.raises(ValueError):
        check_position(lat, lon)


def test_check_position_folds_longitude():
    assert check_position(10, 190) == (10.0, -170.0)
    assert check_position(10, 180) == (10.0, -180.0)
    assert check_position(-90, -360) == (-90.0, 0.0)


@settings(max_examples=300, deadline=None)
@given(latitudes, longitudes, latitudes, longitudes)
def test_distance_is_bounded_by_the_angle_between_normals(lat1, lon1, lat2, lon2):
    # The inequality RescueFleetIndex relies on: R_MIN * theta <= s <= R_MAX * theta.
    normals = unit_normals(np.array([lat1, lat2]), np.array([lon1, lon2]))
    theta = float(chord_to_angle(np.linalg.norm(normals[0] - normals[1])))
    s = distance_m(lat1, lon1, lat2, lon2)
    assert MIN_CURVATURE_RADIUS_M * theta <= s + 1e-6
    assert s <= MAX_CURVATURE_RADIUS_M * theta + 1e-6


@pytest.mark.parametrize("centre", [(31.2, 121.5), (10.0, 179.9), (-60.0, -179.0), (89.5, 0.0), (90.0, 0.0)])
def test_local_frame_is_projs_azimuthal_equidistant(centre):
    frame = LocalFrame(*centre)
    proj = Proj(proj="aeqd", lat_0=centre[0], lon_0=centre[1], ellps="WGS84")
    rng = np.random.default_rng(3)
    lats = np.clip(centre[0] + rng.uniform(-3, 3, 40), -89.999, 89.999)  # at a pole lon is arbitrary
    lons = centre[1] + rng.uniform(-3, 3, 40)
    xs, ys = frame.to_local(lats, lons)
    px, py = proj(lons, lats)
    assert np.abs(xs - px).max() < 1e-6 and np.abs(ys - py).max() < 1e-6
    back_lats, back_lons = frame.to_geographic(xs, ys)
    assert np.abs(back_lats - lats).max() < 1e-9
    assert np.abs((back_lons - lons + 180) % 360 - 180).max() < 1e-9
    # Unwrapped around the centre: no jump across the antimeridian.
    assert np.abs(back_lons - centre[1]).max() <= 180.0
    x, y = frame.point_to_local(lats[0], lons[0])
    assert (x, y) == pytest.approx((xs[0], ys[0]), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(latitudes, longitudes, st.floats(0, 360), st.floats(1, 500_000))
def test_local_frame_keeps_distance_from_centre(lat, lon, bearing, dist):
    frame = LocalFrame(lat, lon)
    lat2, lon2 = destination(lat, lon, bearing, dist)
    x, y = frame.point_to_local(lat2, lon2)
    assert math.hypot(x, y) == pytest.approx(dist, rel=1e-9, abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(
    st.floats(-89.9, 89.9),
    longitudes,
    st.floats(10, 300_000),
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=20, max_size=20),
)
def test_envelope_holds_every_point_of_the_shape(lat, lon, radius, samples):
    # Circles anywhere (antimeridian, poles included): every point inside maps into one of the boxes.
    frame = LocalFrame(lat, lon)
    disc = frame.circle(radius)
    parts = frame.envelope(disc).canonical_parts()
    for u, v in samples:
        x, y = radius * math.sqrt(u) * math.sin(2 * math.pi * v), radius * math.sqrt(u) * math.cos(2 * math.pi * v)
        if not disc.contains(shapely.Point(x, y)):
            continue
        plat, plon = frame.to_geographic(np.array([x]), np.array([y]))
        plon = (float(plon[0]) + 180.0) % 360.0 - 180.0
        assert any(
            b[0] <= plon <= b[2] and b[1] <= plat[0] <= b[3] for b in parts
        ), (plat, plon, parts)


def test_envelope_reaches_the_pole_it_covers():
    frame = LocalFrame(89.0, 45.0)
    box = frame.envelope(frame.circle(200_000))
    assert box.north == 90.0 and (box.west, box.east) == (-180.0, 180.0)


def test_geobox_canonical_parts_split_at_antimeridian():
    assert GeoBox(-1, 1, 170, 190).canonical_parts() == [(170, -1, 180, 1), (-180, -1, -170, 1)]
    assert GeoBox(-1, 1, -190, -170).canonical_parts() == [(170, -1, 180, 1), (-180, -1, -170, 1)]
    assert GeoBox(-1, 1, 10, 20).canonical_parts() == [(10, -1, 20, 1)]
    assert GeoBox(-1, 1, -200, 200).canonical_parts() == [(-180, -1, 180, 1)]


def test_mean_position_across_antimeridian_and_pole():
    lat, lon = mean_position(np.array([0.0, 0.0]), np.array([179.0, -179.0]))
    assert lat == pytest.approx(0.0, abs=1e-9) and abs(abs(lon) - 180.0) < 1e-9
    lat, _ = mean_position(np.array([89.0, 89.0, 89.0]), np.array([0.0, 120.0, -120.0]))
    assert lat == pytest.approx(90.0, abs=1e-9)
    with pytest.raises(ValueError):
        mean_position(np.array([0.0, 0.0]), np.array([0.0, 180.0]))
