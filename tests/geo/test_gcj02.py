"""GCJ-02: published reference points, round trips inside China, identity outside."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.gcj02 import gcj02_to_wgs84, in_gcj02_region, wgs84_to_gcj02
from geo.geodesy import distance_m

# (wgs_lat, wgs_lon, gcj_lat, gcj_lon) from googollee/eviltransform go/transform_test.go.
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
    # wandergis/coordtransform test/app.js: wgs84togcj02(116.404, 39.915).
    (39.915, 116.404, 39.91640428150164, 116.41024449916938),
]


@pytest.mark.parametrize("wgs_lat, wgs_lon, gcj_lat, gcj_lon", EVILTRANSFORM)
def test_wgs84_to_gcj02_reference_points(wgs_lat, wgs_lon, gcj_lat, gcj_lon):
    lat, lon = wgs84_to_gcj02(wgs_lat, wgs_lon)
    assert lat == pytest.approx(gcj_lat, abs=1e-9)
    assert lon == pytest.approx(gcj_lon, abs=1e-9)
    # The offset is hundreds of metres: the test would notice a no-op.
    assert distance_m(wgs_lat, wgs_lon, lat, lon) > 100


@pytest.mark.parametrize("wgs_lat, wgs_lon, gcj_lat, gcj_lon", EVILTRANSFORM)
def test_gcj02_to_wgs84_reference_points(wgs_lat, wgs_lon, gcj_lat, gcj_lon):
    lat, lon = gcj02_to_wgs84(gcj_lat, gcj_lon)
    assert distance_m(lat, lon, wgs_lat, wgs_lon) < 0.01


@settings(max_examples=300, deadline=None)
@given(st.floats(18.0, 53.0), st.floats(74.0, 134.5))
def test_round_trips_inside_china_within_a_centimetre(lat, lon):
    assert distance_m(lat, lon, *gcj02_to_wgs84(*wgs84_to_gcj02(lat, lon))) < 0.01
    assert distance_m(lat, lon, *wgs84_to_gcj02(*gcj02_to_wgs84(lat, lon))) < 0.01


@pytest.mark.parametrize(
    "lat, lon",
    [(51.4779, -0.0015), (35.6812, 139.7671), (-33.8688, 151.2093), (0.5, 100.0), (60.0, 100.0), (0.0, 180.0)],
)
def test_outside_china_is_unchanged_and_silent(lat, lon):
    assert not in_gcj02_region(lat, lon)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wgs84_to_gcj02(lat, lon) == (lat, (lon + 180) % 360 - 180)
        assert gcj02_to_wgs84(lat, lon) == (lat, (lon + 180) % 360 - 180)


@pytest.mark.parametrize("lat, lon", [(float("nan"), 120.0), (30.0, float("inf")), (95.0, 120.0), ("a", 1)])
def test_bad_input_is_a_value_error(lat, lon):
    with pytest.raises(ValueError):
        wgs84_to_gcj02(lat, lon)
    with pytest.raises(ValueError):
        gcj02_to_wgs84(lat, lon)
