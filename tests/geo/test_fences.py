"""FenceIndex (lookups, scopes, reloads) and FenceTracker (enter/exit once per crossing)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.fence_shapes import CircleFence, CorridorFence, PolygonFence
from geo.fences import ENTER, EXIT, FenceIndex, FenceTracker
from geo.geodesy import destination, destinations
from tests.geo.test_fence_shapes import U_RING

DATELINE = PolygonFence("dl", "dateline", None, ((-1.0, 179.0), (-1.0, -179.0), (1.0, -179.0), (1.0, 179.0)))
DEPOT = CircleFence(1, "depot", None, 31.23, 121.47, 500.0)
YARD = PolygonFence("u", "yard", 42, U_RING)


def _random_fences(seed: int, lat: float, lon: float, count: int) -> list:
    """Circles, star polygons and corridors scattered within ~30 km of (lat, lon)."""
    rng = np.random.default_rng(seed)
    fences = []
    for i in range(count):
        clat, clon = destination(lat, lon, rng.uniform(0, 360), rng.uniform(0, 30_000))
        scope = None if rng.random() < 0.5 else int(rng.integers(3))
        kind = i % 3
        if kind == 0:
            fences.append(CircleFence(i, "c", scope, clat, clon, rng.uniform(100, 8000)))
        elif kind == 1:
            arms = int(rng.integers(5, 12))
            bearings = (np.arange(arms) + rng.uniform(0, 0.8, arms)) * 360 / arms
            lats, lons = destinations(clat, clon, bearings, rng.uniform(200, 8000) * rng.uniform(0.3, 1, arms))
            fences.append(PolygonFence(i, "p", scope, tuple(zip(lats.tolist(), lons.tolist(), strict=True))))
        else:
            path = [(clat, clon)]
            for _ in range(int(rng.integers(1, 6))):
                path.append(destination(*path[-1], rng.uniform(0, 360), rng.uniform(500, 6000)))
            fences.append(CorridorFence(i, "r", scope, tuple(path), rng.uniform(20, 2000)))
    return fences


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**31),
    st.sampled_from([(31.2, 121.5), (0.0, 179.95), (-45.0, -179.99), (89.6, 10.0), (-89.7, -60.0)]),
)
def test_index_agrees_with_a_full_scan(seed, where):
    # Includes fences straddling the antimeridian and around both poles.
    fences = _random_fences(seed, where[0], where[1], 30)
    index = FenceIndex.build(fences)
    rng = np.random.default_rng(seed + 1)
    lats, lons = destinations(where[0], where[1], rng.uniform(0, 360, 150), rng.uniform(0, 40_000, 150))
    hits = 0
    for lat, lon in zip(lats.tolist(), lons.tolist(), strict=True):
        for scope in ((), (1,), (0, 2), None):
            found = index.containing(lat, lon, scope)
            assert found == index.scan_containing(lat, lon, scope)
            hits += len(found)
    assert hits > 0  # the comparison is not vacuous


def test_scopes():
    index = FenceIndex.build([DEPOT, YARD])
    assert index.containing(31.22, 121.405) == frozenset()  # owner 42 only
    assert index.containing(31.22, 121.405, (42,)) == {"u"}
    assert index.containing(31.22, 121.405, None) == {"u"}
    assert index.containing(31.23, 121.47, (7,)) == {1}  # scope None: every vehicle
    assert index.applies("u", (42,)) and not index.applies("u", (7,)) and not index.applies("nope", None)


def test_seam_longitudes_find_dateline_fences():
    index = FenceIndex.build([DATELINE])
    for lon in (180.0, -180.0, 179.5, -179.5):
        assert index.containing(0.0, lon) == {"dl"}
    assert index.containing(0.0, 178.9) == frozenset()


def test_bad_positions_raise_value_error():
    index = FenceIndex.build([DEPOT])
    for lat, lon in ((float("nan"), 1.0), (100.0, 1.0), (1.0, "east")):
        with pytest.raises(ValueError):
            index.containing(lat, lon)


def test_replace_and_reload_reuse_unchanged_fences():
    index = FenceIndex.build([DEPOT, YARD, DATELINE])
    moved = CircleFence(1, "depot", None, 31.30, 121.47, 500.0)
    new = index.replace(upsert=[moved], remove=["dl"])
    assert len(new) == 2 and "dl" not in new and new.get(1) == moved
    assert new._compiled["u"] is index._compiled["u"]  # not recompiled
    assert index.containing(31.23, 121.47) == {1} and new.containing(31.23, 121.47) == frozenset()
    reloaded = new.reload([YARD, DATELINE])
    assert sorted(map(str, (f.id for f in reloaded))) == ["dl", "u"]
    assert reloaded._compiled["u"] is index._compiled["u"]


def test_bad_fences_are_reported_or_raised():
    bowtie = PolygonFence("bow", "p", None, ((0, 0), (1, 1), (1, 0), (0, 1)))
    with pytest.raises(ValueError):
        FenceIndex.build([DEPOT, bowtie])
    with pytest.raises(ValueError, match="twice"):
        FenceIndex.build([DEPOT, DEPOT])
    errors = []
    index = FenceIndex.build([DEPOT, bowtie, DEPOT], on_error=lambda f, e: errors.append((f.id, str(e))))
    assert len(index) == 1 and [e[0] for e in errors] == ["bow", 1]
    unchanged = FenceIndex.build([DEPOT])
    with pytest.raises(ValueError):
        unchanged.replace(upsert=[bowtie])
    assert len(unchanged) == 1


def _drive(lat, lon, bearing, metres, step=10.0):
    return [destination(lat, lon, bearing, d) for d in np.arange(0.0, metres + step, step)]


def _run(tracker, vehicle, route, scope=()):
    events = []
    for i, (lat, lon) in enumerate(route):
        for fence_id, kind in tracker.update(vehicle, lat, lon, scope):
            events.append((i, fence_id, kind))
    return events


def test_crossing_a_circle_fires_once_each_way():
    tracker = FenceTracker(FenceIndex.build([DEPOT]))
    # Along one geodesic through the centre, from 1005 m west to 995 m east, every 10 m.
    route = [destination(31.23, 121.47, 90.0, d) for d in np.arange(-1005.0, 1000.0, 10.0)]
    events = _run(tracker, "v1", route)
    assert [(f, k) for _, f, k in events] == [(1, ENTER), (1, EXIT)]
    assert events[0][0] == 51 and events[1][0] == 151  # first seen at -495 m, last at +495 m


def test_crossing_a_u_fires_for_each_arm():
    tracker = FenceTracker(FenceIndex.build([YARD]))
    route = _drive(31.22, 121.395, 90.0, 4000.0)  # west to east through both arms and the notch
    events = _run(tracker, "v1", route, (42,))
    assert [k for _, _, k in events] == [ENTER, EXIT, ENTER, EXIT]
    # Another vehicle driving the same route but belonging to another owner sees nothing.
    assert _run(tracker, "v2", route, (7,)) == []


def test_crossing_the_antimeridian_inside_a_fence_is_not_an_exit():
    tracker = FenceTracker(FenceIndex.build([DATELINE]))
    route = _drive(0.0, 178.5, 90.0, 333_000.0, step=1000.0)  # 178.5E .. about 178.5W
    events = _run(tracker, "ship", route)
    assert [k for _, _, k in events] == [ENTER, EXIT]
    enter_lon, exit_lon = route[events[0][0]][1], route[events[1][0]][1]
    assert 179.0 <= enter_lon < 179.01 and -179.0 <= exit_lon < -178.99


def test_hysteresis_damps_jitter_on_the_edge():
    edge = [destination(31.23, 121.47, 0.0, 500.0 + jitter) for jitter in (-3, 3, -2, 4, -1, 2, 3, -3, 4)]
    twitchy = FenceTracker(FenceIndex.build([DEPOT]))
    assert len(_run(twitchy, "v", edge)) > 4  # without hysteresis every jitter is a crossing
    calm = FenceTracker(FenceIndex.build([DEPOT]), hysteresis_m=5.0)
    assert [k for _, _, k in _run(calm, "v", edge)] == [ENTER]
    assert calm.update("v", *destination(31.23, 121.47, 0.0, 504.0)) == []
    assert calm.update("v", *destination(31.23, 121.47, 0.0, 506.0)) == [(1, EXIT)]
    assert calm.update("v", *destination(31.23, 121.47, 0.0, 503.0)) == []  # outside: no re-enter yet
    assert calm.update("v", *destination(31.23, 121.47, 0.0, 499.0)) == [(1, ENTER)]


def test_state_survives_export_and_import():
    index = FenceIndex.build([DEPOT, YARD])
    tracker = FenceTracker(index)
    assert tracker.update(17, 31.23, 121.47) == [(1, ENTER)]
    assert tracker.update("abc", 31.22, 121.405, (42,)) == [("u", ENTER)]
    snapshot = json.loads(json.dumps(tracker.export_state()))
    restored = FenceTracker(index)
    restored.import_state(snapshot)
    assert restored.inside(17) == {1} and restored.inside("abc") == {"u"}
    assert restored.update(17, 31.23, 121.4701) == []  # no second enter after the restart
    assert restored.update("abc", 31.22, 121.415, (42,)) == [("u", EXIT)]


@pytest.mark.parametrize(
    "state",
    [None, {}, {"version": 2, "inside": []}, {"version": 1, "inside": {}}, {"version": 1, "inside": [[1]]},
     {"version": 1, "inside": [[1, [1.5]]]}, {"version": 1, "inside": [[[1], [1]]]}],
)
def test_malformed_state_is_rejected_and_changes_nothing(state):
    tracker = FenceTracker(FenceIndex.build([DEPOT]))
    tracker.update("v", 31.23, 121.47)
    with pytest.raises(ValueError):
        tracker.import_state(state)
    assert tracker.inside("v") == {1}


def test_deleted_or_rescoped_fence_is_forgotten_without_exit():
    index = FenceIndex.build([DEPOT, YARD])
    tracker = FenceTracker(index)
    tracker.update("a", 31.23, 121.47)
    tracker.update("b", 31.22, 121.405, (42,))
    tracker.swap(index.replace(upsert=[PolygonFence("u", "yard", 43, U_RING)], remove=[1]))
    assert tracker.update("a", 31.23, 121.47) == []
    assert tracker.update("b", 31.22, 121.405, (42,)) == []
    assert tracker.inside("a") == frozenset() and tracker.inside("b") == frozenset()


def test_first_position_inside_enters_and_bad_position_changes_nothing():
    tracker = FenceTracker(FenceIndex.build([DEPOT, DATELINE]))
    assert tracker.update("v", 31.23, 121.47) == [(1, ENTER)]
    with pytest.raises(ValueError):
        tracker.update("v", float("nan"), 0.0)
    assert tracker.inside("v") == {1}
    assert tracker.update("v", 0.0, 179.5) == [(1, EXIT), ("dl", ENTER)]  # exits first
    tracker.restore("w", ["dl"])
    assert tracker.update("w", 0.0, -179.5) == []
    tracker.forget("w")
    assert tracker.inside("w") == frozenset()
    with pytest.raises(ValueError):
        FenceTracker(FenceIndex(), hysteresis_m=-1.0)
