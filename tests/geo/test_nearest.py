"""RescueFleetIndex.nearest against a brute-force exact geodesic scan, filters and upkeep."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.geodesy import destination, distances_m
from geo.nearest import Availability, RescueFleetIndex, TruckPosition

NOW = 1_700_000_000.0
CAPS = ("tow", "flatbed", "battery")


def brute_force(trucks, lat, lon, k, *, now, max_km=None, capability=None, max_age_s=None, include_stale=False):
    """Exact geodesic distance to every truck, filtered and ranked the way nearest() promises."""
    keep = [
        t for t in trucks.values()
        if t.availability is Availability.AVAILABLE
        and (capability is None or capability in t.capabilities)
        and (max_age_s is None or include_stale or t.time >= now - max_age_s)
    ]
    if not keep:
        return []
    dist = distances_m(lat, lon, np.array([t.lat for t in keep]), np.array([t.lon for t in keep]))
    ranked = sorted(zip(dist.tolist(), keep, strict=True), key=lambda p: (p[0], str(p[1].truck_id)))
    if max_km is not None:
        ranked = [p for p in ranked if p[0] <= max_km * 1000]
    return [(t.truck_id, d) for d, t in ranked[:k]]


def assert_same(got, expected):
    """Same trucks in the same order; distances equal up to float noise of the geodesic solver."""
    assert [t.truck_id for t in got] == [truck_id for truck_id, _ in expected]
    assert [t.distance_m for t in got] == pytest.approx([d for _, d in expected], rel=1e-12, abs=1e-6)


def _fleet(rng, count, centre, spread_m):
    trucks = {}
    states = list(Availability)
    for i in range(count):
        lat, lon = destination(*centre, rng.uniform(0, 360), spread_m * math.sqrt(rng.random()))
        trucks[i] = TruckPosition(
            i if i % 3 else f"T{i}", lat, lon, NOW - rng.exponential(300), states[rng.integers(len(states))]
            if rng.random() < 0.5 else Availability.AVAILABLE,
            frozenset(c for c in CAPS if rng.random() < 0.5),
        )
    return {t.truck_id: t for t in trucks.values()}


CENTRES = st.sampled_from([(31.2, 121.5), (0.0, 180.0), (-33.0, -179.9), (89.9, 0.0), (-89.95, 45.0), (0.0, 0.0)])


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    centre=CENTRES,
    spread_km=st.sampled_from([0.5, 20.0, 400.0, 20_000.0]),
    count=st.integers(0, 400),
    k=st.integers(1, 8),
    cell_km=st.sampled_from([None, 0.2, 5.0, 500.0]),
    max_km=st.sampled_from([None, 1.0, 50.0]),
    capability=st.sampled_from([None, "tow", "winch"]),
    max_age_s=st.sampled_from([None, 300.0]),
    include_stale=st.booleans(),
)
def test_nearest_matches_brute_force(
    seed, centre, spread_km, count, k, cell_km, max_km, capability, max_age_s, include_stale
):
    rng = np.random.default_rng(seed)
    trucks = _fleet(rng, count, centre, spread_km * 1000)
    fleet = RescueFleetIndex(cell_km=cell_km)
    fleet.upsert_many(trucks.values())
    filters = dict(now=NOW, max_km=max_km, capability=capability, max_age_s=max_age_s, include_stale=include_stale)
    for _ in range(4):
        lat, lon = destination(*centre, rng.uniform(0, 360), spread_km * 1000 * rng.random() * 1.2)
        assert_same(fleet.nearest(lat, lon, k, **filters), brute_force(trucks, lat, lon, k, **filters))
    # Move, remove and re-add trucks after the grid was built: the pending list must cover them.
    for truck_id in list(trucks)[: count // 3]:
        t = trucks[truck_id]
        if rng.random() < 0.3:
            assert fleet.remove(truck_id)
            del trucks[truck_id]
            continue
        lat, lon = destination(t.lat, t.lon, rng.uniform(0, 360), rng.uniform(0, spread_km * 500))
        trucks[truck_id] = TruckPosition(truck_id, lat, lon, NOW, t.availability, t.capabilities)
        fleet.upsert(trucks[truck_id])
    assert len(fleet) == len(trucks)
    lat, lon = destination(*centre, rng.uniform(0, 360), spread_km * 1000 * rng.random())
    assert_same(fleet.nearest(lat, lon, k, **filters), brute_force(trucks, lat, lon, k, **filters))


def test_many_trucks_many_queries():
    rng = np.random.default_rng(11)
    trucks = _fleet(rng, 5000, (30.0, 117.0), 600_000)
    fleet = RescueFleetIndex()
    fleet.upsert_many(trucks.values())
    found = 0
    for _ in range(60):
        lat, lon = destination(30.0, 117.0, rng.uniform(0, 360), rng.uniform(0, 700_000))
        for kwargs in ({}, {"capability": "battery"}, {"max_km": 20.0}, {"max_age_s": 120.0}):
            got = fleet.nearest(lat, lon, 5, now=NOW, **kwargs)
            assert_same(got, brute_force(trucks, lat, lon, 5, now=NOW, **kwargs))
            found += len(got)
    assert found > 500


def test_result_fields_eta_age_and_stale_flag():
    fleet = RescueFleetIndex(avg_speed_kmh=36.0)  # 10 m/s
    fleet.upsert(TruckPosition("fresh", *destination(31.0, 121.0, 0.0, 1000.0), NOW - 10, "available", {"tow"}))
    fleet.upsert(TruckPosition("old", *destination(31.0, 121.0, 90.0, 500.0), NOW - 900, "available"))
    fleet.upsert(TruckPosition("busy", 31.0, 121.0, NOW, Availability.DISPATCHED))
    fleet.upsert(TruckPosition("future", *destination(31.0, 121.0, 180.0, 2000.0), NOW + 5, "available"))
    got = fleet.nearest(31.0, 121.0, 5, now=NOW)
    assert [t.truck_id for t in got] == ["old", "fresh", "future"]
    fresh = got[1]
    assert fresh.distance_m == pytest.approx(1000.0, abs=1e-6)
    assert fresh.eta_s == pytest.approx(100.0, abs=1e-6)
    assert fresh.age_s == 10.0 and not fresh.stale and fresh.capabilities == {"tow"}
    assert got[2].age_s == 0.0
    assert [t.truck_id for t in fleet.nearest(31.0, 121.0, 5, now=NOW, max_age_s=60)] == ["fresh", "future"]
    flagged = fleet.nearest(31.0, 121.0, 5, now=NOW, max_age_s=60, include_stale=True)
    assert [(t.truck_id, t.stale) for t in flagged] == [("old", True), ("fresh", False), ("future", False)]
    assert [t.truck_id for t in fleet.nearest(31.0, 121.0, 5, now=NOW, capability="tow")] == ["fresh"]
    assert fleet.nearest(31.0, 121.0, 5, now=NOW, capability="crane") == []
    assert [t.truck_id for t in fleet.nearest(31.0, 121.0, 5, now=NOW, max_km=0.9)] == ["old"]


def test_availability_changes_and_upkeep():
    fleet = RescueFleetIndex()
    fleet.upsert(TruckPosition(1, 31.0, 121.0, NOW, "available"))
    fleet.upsert(TruckPosition(2, 31.01, 121.0, NOW, "available"))
    assert [t.truck_id for t in fleet.nearest(31.0, 121.0, 1, now=NOW)] == [1]
    fleet.set_availability(1, "en_route")
    assert [t.truck_id for t in fleet.nearest(31.0, 121.0, 1, now=NOW)] == [2]
    assert fleet.get(1) == TruckPosition(1, 31.0, 121.0, NOW, Availability.EN_ROUTE)
    assert fleet.remove(2) and not fleet.remove(2) and 2 not in fleet and fleet.get(2) is None
    assert fleet.nearest(31.0, 121.0, 3, now=NOW) == []
    fleet.upsert(TruckPosition(3, 31.0, 121.0, NOW, "available"))  # reuses the freed slot
    assert [t.truck_id for t in fleet.nearest(31.0, 121.0, 3, now=NOW)] == [3]
    with pytest.raises(KeyError):
        fleet.set_availability("nope", "available")
    with pytest.raises(ValueError):
        fleet.set_availability(3, "napping")
    assert RescueFleetIndex().nearest(0.0, 0.0, 5, now=NOW) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"k": 0}, {"k": 2.5}, {"k": True}, {"now": float("nan")}, {"max_km": 0}, {"max_km": float("inf")},
     {"max_age_s": -1}, {"lat": 91.0}, {"lon": float("nan")}],
)
def test_bad_queries_raise_value_error(kwargs):
    fleet = RescueFleetIndex()
    fleet.upsert(TruckPosition(1, 31.0, 121.0, NOW, "available"))
    args = {"lat": 31.0, "lon": 121.0, "k": 5, "now": NOW} | kwargs
    with pytest.raises(ValueError):
        fleet.nearest(args.pop("lat"), args.pop("lon"), args.pop("k"), **args)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TruckPosition(1, 31.0, 121.0, NOW, "asleep"),
        lambda: TruckPosition(1, 31.0, 121.0, float("nan"), "available"),
        lambda: TruckPosition(1, 95.0, 121.0, NOW, "available"),
        lambda: TruckPosition(1.5, 31.0, 121.0, NOW, "available"),
        lambda: TruckPosition(1, 31.0, 121.0, NOW, "available", "tow"),
        lambda: RescueFleetIndex(avg_speed_kmh=0),
        lambda: RescueFleetIndex(cell_km=-1),
    ],
)
def test_bad_trucks_and_settings_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_more_than_64_capabilities_is_refused():
    fleet = RescueFleetIndex()
    fleet.upsert(TruckPosition(1, 0, 0, NOW, "available", frozenset(f"c{i}" for i in range(64))))
    with pytest.raises(ValueError, match="64"):
        fleet.upsert(TruckPosition(2, 0, 0, NOW, "available", {"one-too-many"}))
    assert 2 not in fleet
