"""Geo core benchmark: nearest free rescue truck (ours vs PostGIS KNN) and geofence throughput.

Prints one JSON object.  Sections:
- ``nearest``: N trucks clustered around eastern-China cities (plus a rural spread), nearest-5 queries
  per second through ``RescueFleetIndex``; the same queries against PostGIS (``geography`` column, GiST
  index, ``ORDER BY geog <-> point LIMIT 5``) on 127.0.0.1:5432/test in a temporary table; top-5
  agreement (same trucks, or equal distances within 1 mm for ties; PostGIS ranks geography KNN by
  sphere distance, so near-ties can legitimately differ and are classified); ratio ours / PostGIS.
  A sample of our answers is also checked against an exact brute-force geodesic scan.
- ``fences``: a FenceIndex of 10,000 fences (circles, concave polygons, corridors; half owner-scoped),
  vehicles driving random routes, reports/s through FenceTracker.update, events fired, and a sample of
  lookups checked against a full scan (with the scan's cost per report for comparison).
Run: ``python bench/geo.py`` (``--no-postgis`` to skip the database part).  Takes about a minute.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time

# Run as ``python bench/geo.py`` this file's folder comes first on sys.path and "geo" would be this
# script, not the package; drop it.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import numpy as np  # noqa: E402
import pyproj  # noqa: E402
import shapely  # noqa: E402

from geo.fence_shapes import CircleFence, CorridorFence, PolygonFence  # noqa: E402
from geo.fences import FenceIndex, FenceTracker  # noqa: E402
from geo.geodesy import destinations, distances_m  # noqa: E402
from geo.nearest import Availability, RescueFleetIndex, TruckPosition  # noqa: E402

# (lat, lon, weight): the big cities of eastern China, where trucks and incidents cluster.
CITIES = [
    (31.23, 121.47, 6), (30.27, 120.15, 3), (32.06, 118.80, 3), (31.30, 120.58, 2), (31.82, 117.23, 2),
    (30.59, 114.31, 3), (23.13, 113.26, 5), (22.54, 114.06, 5), (24.48, 118.09, 2), (26.07, 119.30, 2),
    (36.07, 120.38, 2), (36.65, 117.12, 2), (39.90, 116.40, 6), (39.13, 117.20, 3), (34.75, 113.63, 3),
    (28.23, 112.94, 2), (28.68, 115.86, 2), (29.87, 121.54, 2), (34.26, 108.94, 2), (38.04, 114.51, 2),
]
REGION = (21.5, 41.0, 108.0, 123.0)  # south, north, west, east: the rural spread
CAPABILITIES = ("tow", "flatbed", "battery", "tyre", "winch", "heavy")
NOW = 1_700_000_000.0


def positions(rng: np.random.Generator, n: int, sigma_km: float = 25.0) -> np.ndarray:
    """``(n, 2)`` lat/lon: 75 % around a city (Gaussian), 25 % uniform over the region."""
    weights = np.array([w for _, _, w in CITIES], dtype=float)
    city = rng.choice(len(CITIES), size=n, p=weights / weights.sum())
    lat = np.array([CITIES[c][0] for c in city]) + rng.normal(0, sigma_km / 111.0, n)
    lon = np.array([CITIES[c][1] for c in city]) + rng.normal(0, sigma_km / 111.0, n) / np.cos(
        np.radians([CITIES[c][0] for c in city])
    )
    rural = rng.random(n) < 0.25
    south, north, west, east = REGION
    lat[rural] = rng.uniform(south, north, rural.sum())
    lon[rural] = rng.uniform(west, east, rural.sum())
    return np.column_stack([lat, lon])


def machine() -> dict[str, object]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "mem_gb": mem_gb, "python": platform.python_version(),
        "numpy": np.__version__, "shapely": shapely.__version__, "pyproj": pyproj.__version__,
        "proj": pyproj.proj_version_str,
    }


def build_fleet(rng: np.random.Generator, n: int) -> tuple[RescueFleetIndex, list[TruckPosition], float, float]:
    where = positions(rng, n)
    states = list(Availability)
    state = rng.choice(len(states), size=n, p=[0.55, 0.1, 0.1, 0.1, 0.05, 0.1])
    ages = rng.exponential(60.0, n)
    trucks = [
        TruckPosition(
            i, float(where[i, 0]), float(where[i, 1]), NOW - float(ages[i]), states[state[i]],
            frozenset(c for c in CAPABILITIES if rng.random() < 0.4),
        )
        for i in range(n)
    ]
    fleet = RescueFleetIndex(avg_speed_kmh=40.0)
    started = time.perf_counter()
    fleet.upsert_many(trucks)
    upsert_s = time.perf_counter() - started
    started = time.perf_counter()
    fleet.compact()
    return fleet, trucks, upsert_s, time.perf_counter() - started


def postgis_knn(dsn: str, trucks: list[TruckPosition], queries: np.ndarray, k: int) -> dict[str, object]:
    import psycopg  # psycopg 3 prepares a query server-side after a few executions by itself

    conn = psycopg.connect(dsn, connect_timeout=5)
    try:
        cur = conn.cursor()
        try:
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.errors.FeatureNotSupported:
            raise SystemExit("bench/geo.py: PostGIS is not installed on this PostgreSQL (Debian: apt-get install "
                             "postgresql-15-postgis-3), or run with --no-postgis") from None
        conn.commit()
        cur.execute("SELECT postgis_lib_version()")
        version = cur.fetchone()[0]
        cur.execute(
            "CREATE TEMP TABLE bench_trucks (id integer PRIMARY KEY, available boolean NOT NULL, "
            "geog geography(Point, 4326) NOT NULL)"
        )
        rows = io.StringIO()
        for t in trucks:
            available = "t" if t.availability is Availability.AVAILABLE else "f"
            rows.write(f"{t.truck_id}\t{available}\tSRID=4326;POINT({t.lon!r} {t.lat!r})\n")
        rows.seek(0)
        started = time.perf_counter()
        with cur.copy("COPY bench_trucks FROM STDIN") as copy:
            copy.write(rows.getvalue())
        cur.execute("CREATE INDEX ON bench_trucks USING gist (geog)")
        cur.execute("ANALYZE bench_trucks")
        load_s = time.perf_counter() - started
        knn = ("SELECT id, ST_Distance(geog, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography) "
               "FROM bench_trucks WHERE available "
               "ORDER BY geog <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography LIMIT %(k)s")
        for lat, lon in queries[:50]:  # warm the cache and the plan
            cur.execute(knn, {"lon": float(lon), "lat": float(lat), "k": k})
            cur.fetchall()
        answers = []
        started = time.perf_counter()
        for lat, lon in queries:
            cur.execute(knn, {"lon": float(lon), "lat": float(lat), "k": k})
            answers.append(cur.fetchall())
        elapsed = time.perf_counter() - started
        return {"version": version, "load_s": round(load_s, 2), "seconds": elapsed, "answers": answers}
    finally:
        conn.rollback()
        conn.close()


def agreement(ours: list[list], theirs: list[list]) -> dict[str, object]:
    """Compare top-k answers.  PostGIS returns its rows ordered by ``<->``, which on geography is the
    SPHERE distance, and ST_Distance on the spheroid; so compare the spheroid distances sorted."""
    same_order = same_set = ties = sphere_misses = ours_worse = 0
    gap = 0.0
    examples = []
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        ids_a, ids_b = [t.truck_id for t in a], [row[0] for row in b]
        ours_d = [t.distance_m for t in a]
        theirs_d = sorted(row[1] for row in b)
        if ids_a == ids_b:
            same_order += 1
        elif set(ids_a) == set(ids_b):
            same_set += 1
        elif len(a) == len(b) and all(abs(x - y) <= 1e-3 for x, y in zip(ours_d, theirs_d, strict=True)):
            ties += 1
        elif len(a) == len(b) and all(x <= y + 1e-3 for x, y in zip(ours_d, theirs_d, strict=True)):
            sphere_misses += 1  # PostGIS's sphere ranking dropped a truck that is nearer on the ellipsoid
            if len(examples) < 3:
                examples.append({"query": i, "ours_m": ours_d, "postgis_m": theirs_d})
        else:
            ours_worse += 1
        if set(ids_a) == set(ids_b):
            gap = max([gap] + [abs(x - y) for x, y in zip(ours_d, theirs_d, strict=True)])
    return {
        "same_trucks_same_order": same_order,
        "same_trucks_other_order": same_set,
        "equal_distances_within_1mm": ties,
        "postgis_sphere_ranking_missed_nearer_truck": sphere_misses,
        "ours_missed_nearer_truck": ours_worse,
        "max_distance_difference_same_trucks_m": gap,
        "examples": examples,
    }


def bench_nearest(args: argparse.Namespace, rng: np.random.Generator) -> dict[str, object]:
    fleet, trucks, upsert_s, compact_s = build_fleet(rng, args.trucks)
    queries = positions(rng, args.queries)
    k = 5
    for lat, lon in queries[:50]:
        fleet.nearest(lat, lon, k, now=NOW)
    started = time.perf_counter()
    ours = [fleet.nearest(float(lat), float(lon), k, now=NOW) for lat, lon in queries]
    ours_s = time.perf_counter() - started

    # Ground truth for a sample: exact geodesic distance to every available truck.
    free = [t for t in trucks if t.availability is Availability.AVAILABLE]
    free_lat = np.array([t.lat for t in free])
    free_lon = np.array([t.lon for t in free])
    exact_bad = 0
    for i in range(min(args.exact_checks, len(queries))):
        truth = np.sort(distances_m(queries[i, 0], queries[i, 1], free_lat, free_lon))[:k]
        got = np.array([t.distance_m for t in ours[i]])
        exact_bad += int(len(got) != len(truth) or not np.allclose(got, truth, rtol=0, atol=1e-3))

    # Other query shapes, for the record.
    started = time.perf_counter()
    for lat, lon in queries[:500]:
        fleet.nearest(float(lat), float(lon), k, now=NOW, capability="heavy", max_age_s=120.0)
    filtered_qps = 500 / (time.perf_counter() - started)
    started = time.perf_counter()
    moves = positions(rng, 20_000, sigma_km=30.0)
    for i, (lat, lon) in enumerate(moves):
        t = trucks[i]
        fleet.upsert(TruckPosition(t.truck_id, float(lat), float(lon), NOW, t.availability, t.capabilities))
    move_us = (time.perf_counter() - started) / len(moves) * 1e6

    result: dict[str, object] = {
        "trucks": args.trucks,
        "available": len(free),
        "queries": len(queries),
        "k": k,
        "upsert_us": round(upsert_s / args.trucks * 1e6, 2),
        "upsert_after_build_us": round(move_us, 2),
        "grid_build_ms": round(compact_s * 1e3, 1),
        "ours_qps": round(len(queries) / ours_s, 1),
        "ours_ms_per_query": round(ours_s / len(queries) * 1e3, 4),
        "ours_qps_capability_and_staleness": round(filtered_qps, 1),
        "exact_checked": min(args.exact_checks, len(queries)),
        "exact_mismatches": exact_bad,
    }
    if args.no_postgis:
        return result
    pg = postgis_knn(args.dsn, trucks, queries, k)
    pg_qps = len(queries) / pg["seconds"]
    result["postgis"] = {
        "version": pg["version"],
        "load_and_index_s": pg["load_s"],
        "qps": round(pg_qps, 1),
        "ms_per_query": round(pg["seconds"] / len(queries) * 1e3, 4),
        "agreement": agreement(ours, pg["answers"]),
    }
    result["ratio_ours_over_postgis"] = round(result["ours_qps"] / pg_qps, 2)  # type: ignore[operator]
    return result


def make_fences(rng: np.random.Generator, n: int, owners: int) -> list:
    centres = positions(rng, n)
    fences = []
    for i, (lat, lon) in enumerate(centres):
        scope = int(rng.integers(owners)) if rng.random() < 0.5 else None
        kind = rng.random()
        if kind < 0.4:
            fences.append(CircleFence(i, f"circle {i}", scope, float(lat), float(lon), float(rng.uniform(200, 5000))))
        elif kind < 0.8:  # a star with uneven arms: concave
            arms = int(rng.integers(6, 17))
            bearings = (np.arange(arms) + rng.uniform(0, 0.8, arms)) * 360.0 / arms
            reach = rng.uniform(300, 8000) * rng.uniform(0.35, 1.0, arms)
            lats, lons = destinations(float(lat), float(lon), bearings, reach)
            fences.append(PolygonFence(i, f"area {i}", scope, tuple(zip(lats.tolist(), lons.tolist(), strict=True))))
        else:  # a route wandering from the centre
            steps = int(rng.integers(3, 30))
            heading = rng.uniform(0, 360) + np.cumsum(rng.normal(0, 25, steps))
            path = [(float(lat), float(lon))]
            for h in heading:
                la, lo = destinations(path[-1][0], path[-1][1], np.array([h]), rng.uniform(1000, 5000))
                path.append((float(la[0]), float(lo[0])))
            fences.append(CorridorFence(i, f"route {i}", scope, tuple(path), float(rng.uniform(30, 300))))
    return fences


def bench_fences(args: argparse.Namespace, rng: np.random.Generator) -> dict[str, object]:
    owners = 2000
    fences = make_fences(rng, args.fences, owners)
    started = time.perf_counter()
    index = FenceIndex.build(fences)
    build_s = time.perf_counter() - started
    tracker = FenceTracker(index, hysteresis_m=5.0)
    vehicles = args.vehicles
    where = positions(rng, vehicles, sigma_km=10.0)
    owner = rng.integers(owners, size=vehicles)
    heading = rng.uniform(0, 360, vehicles)
    rounds = max(1, args.reports // vehicles)
    events = 0
    elapsed = 0.0
    for _ in range(rounds):
        heading += rng.normal(0, 20, vehicles)
        step = rng.uniform(50, 400, vehicles)  # 10-80 km/h at one report per 5 s... 30 s
        lats, lons, _ = pyproj.Geod(ellps="WGS84").fwd(where[:, 1], where[:, 0], heading, step)
        where = np.column_stack([lats, lons])[:, ::-1]
        batch = [(v, float(where[v, 0]), float(where[v, 1]), (int(owner[v]),)) for v in range(vehicles)]
        started = time.perf_counter()
        for vehicle, lat, lon, scope in batch:
            events += len(tracker.update(vehicle, lat, lon, scope))
        elapsed += time.perf_counter() - started
    reports = rounds * vehicles
    # Index vs full scan on a sample: same answers, and what a scan would cost per report.
    sample = positions(rng, args.scan_checks, sigma_km=10.0)
    mismatches = 0
    started = time.perf_counter()
    scanned = [index.scan_containing(float(a), float(b), (int(owner[i % vehicles]),)) for i, (a, b) in enumerate(sample)]
    scan_s = time.perf_counter() - started
    for i, (a, b) in enumerate(sample):
        mismatches += int(index.containing(float(a), float(b), (int(owner[i % vehicles]),)) != scanned[i])
    kinds = {"circle": sum(isinstance(f, CircleFence) for f in fences),
             "polygon": sum(isinstance(f, PolygonFence) for f in fences),
             "corridor": sum(isinstance(f, CorridorFence) for f in fences)}
    started = time.perf_counter()
    index.replace(upsert=fences[:100], remove=[f.id for f in fences[100:200]])
    replace_ms = (time.perf_counter() - started) * 1e3
    return {
        "fences": len(fences),
        "kinds": kinds,
        "build_s": round(build_s, 2),
        "replace_100_remove_100_ms": round(replace_ms, 1),
        "vehicles": vehicles,
        "reports": reports,
        "reports_per_s": round(reports / elapsed, 1),
        "us_per_report": round(elapsed / reports * 1e6, 2),
        "events": events,
        "scan_checked": len(sample),
        "scan_mismatches": mismatches,
        "scan_us_per_report": round(scan_s / len(sample) * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trucks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--exact-checks", type=int, default=200)
    parser.add_argument("--fences", type=int, default=10_000)
    parser.add_argument("--vehicles", type=int, default=5_000)
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--scan-checks", type=int, default=300)
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=test")
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    out: dict[str, object] = {"machine": machine()}
    out["nearest"] = bench_nearest(args, rng)
    out["nearest"]["section_s"] = round(time.perf_counter() - started, 1)  # type: ignore[index]
    out["fences"] = bench_fences(args, rng)
    out["total_s"] = round(time.perf_counter() - started, 1)
    json.dump(out, sys.stdout, indent=2, default=float)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
