"""Live positions of rescue trucks and the k nearest available ones by exact geodesic distance.

Owns ``RescueFleetIndex``.  Trucks live in numpy column arrays (one slot per truck).  ``upsert`` writes
the slot and, if the truck moved, appends it to a "dirty" list: O(1).  The spatial prefilter is a
``GridPyramid`` of unit normals rebuilt in bulk when the dirty list outgrows n/16 (O(n log n) every n/16
moves, so amortised O(log n) per report); dirty trucks are always added to the candidates, so a
stale grid can never hide a truck.

Why the prefilter cannot drop a true top-k truck.  Let q be the query normal and, for a truck, theta
the angle between its normal and q.  On the WGS-84 ellipsoid every curve of length s turns the surface
normal by an angle in [s / R_MAX, s / R_MIN] (R_MIN = a(1 - e^2), R_MAX = a / sqrt(1 - e^2), the
extreme radii of curvature), hence for the geodesic distance s:  R_MIN theta <= s <= R_MAX theta.
1. Among the eligible gathered trucks take D = the k-th smallest upper bound R_MAX theta (or the
   ``max_km`` limit if smaller).  At least k trucks have s <= D, so a truck with s > D is not top-k.
2. Every truck outside the gathered block has chord > clearance, so s > R_MIN * 2 asin(clearance / 2).
   The search widens until that exceeds D, so no truck outside the block can be top-k.
3. Inside the block, trucks with R_MIN theta > D also have s > D and are skipped; every other one gets
   its exact pyproj distance, and the k smallest exact distances are returned.
The bounds are exact inequalities; a 1 mm slack covers floating point.  The approximate metric is off
by at most 1.01 % (R_MAX / R_MIN = 1.0101), which only costs a few extra exact evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from geo.geodesy import GEOD, MAX_CURVATURE_RADIUS_M, MIN_CURVATURE_RADIUS_M, check_position
from geo.sphere_grid import GridPyramid, choose_cell

TruckId = int | str
_SLACK_M = 1e-3
_MAX_RINGS = 4  # a 9^3 block of cubes; beyond that a full vectorised scan is about as cheap


class Availability(StrEnum):
    AVAILABLE = "available"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    RETURNING = "returning"
    OFF_DUTY = "off_duty"


_CODE = {availability: code for code, availability in enumerate(Availability)}
_AVAILABILITY = list(Availability)
_EMPTY = -1
_AVAILABLE = _CODE[Availability.AVAILABLE]


@dataclass(frozen=True, slots=True)
class TruckPosition:
    """A rescue truck's last report.  ``time`` is the fix time in POSIX seconds."""

    truck_id: TruckId
    lat: float
    lon: float
    time: float
    availability: Availability
    capabilities: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if isinstance(self.truck_id, bool) or not isinstance(self.truck_id, int | str):
            raise ValueError(f"truck id must be an int or str, got {self.truck_id!r}")
        lat, lon = check_position(self.lat, self.lon)
        object.__setattr__(self, "lat", lat)
        object.__setattr__(self, "lon", lon)
        if isinstance(self.time, bool) or not isinstance(self.time, int | float) or not math.isfinite(self.time):
            raise ValueError(f"truck {self.truck_id!r}: time must be POSIX seconds, got {self.time!r}")
        try:
            object.__setattr__(self, "availability", Availability(self.availability))
        except ValueError:
            raise ValueError(f"truck {self.truck_id!r}: unknown availability {self.availability!r}") from None
        caps = self.capabilities
        if isinstance(caps, str) or not all(isinstance(c, str) for c in caps):
            raise ValueError(f"truck {self.truck_id!r}: capabilities must be a set of names")
        object.__setattr__(self, "capabilities", frozenset(caps))


@dataclass(frozen=True, slots=True)
class NearbyTruck:
    truck_id: TruckId
    lat: float
    lon: float
    distance_m: float  # exact WGS-84 geodesic distance
    eta_s: float  # distance at the index's average road speed
    age_s: float  # how old the position is at ``now`` (0 if the fix claims to be from the future)
    stale: bool  # older than max_age_s (only returned when include_stale=True)
    availability: Availability
    capabilities: frozenset[str]


def _angle(chord: float) -> float:
    return 2.0 * math.asin(min(1.0, chord / 2.0))


def _chord_within(distance_m: float) -> float:
    """Largest chord whose lower-bound distance R_MIN * angle is <= distance_m (+ slack)."""
    angle = (distance_m + _SLACK_M) / MIN_CURVATURE_RADIUS_M
    return 2.0 * math.sin(angle / 2.0) if angle < math.pi else math.inf


def _normal(lat: float, lon: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lon)
    return math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)


class RescueFleetIndex:
    """In-memory fleet of rescue trucks answering "k nearest available".  Not thread-safe."""

    def __init__(self, avg_speed_kmh: float = 40.0, cell_km: float | None = None) -> None:
        if not (math.isfinite(avg_speed_kmh) and avg_speed_kmh > 0):
            raise ValueError(f"avg_speed_kmh must be positive, got {avg_speed_kmh!r}")
        if cell_km is not None and not (math.isfinite(cell_km) and cell_km > 0):
            raise ValueError(f"cell_km must be positive, got {cell_km!r}")
        self._speed_ms = avg_speed_kmh / 3.6
        self._fixed_cell = None if cell_km is None else min(2.0, max(1e-6, cell_km * 1000 / 6371008.8))
        self._cell: float | None = None
        self._cell_chosen_for = 0
        self._capacity = 0
        self._size = 0  # slots ever used (high-water mark)
        self._normals = np.zeros((0, 3))
        self._lat = np.zeros(0)
        self._lon = np.zeros(0)
        self._time = np.zeros(0)
        self._status = np.zeros(0, dtype=np.int8)
        self._caps = np.zeros(0, dtype=np.uint64)
        self._dirty = np.zeros(0, dtype=bool)
        self._ids: list[TruckId | None] = []
        self._cap_names: list[frozenset[str]] = []
        self._slot_of: dict[TruckId, int] = {}
        self._free: list[int] = []
        self._bits: dict[str, int] = {}
        self._dirty_slots: list[int] = []
        self._dirty_array: np.ndarray | None = None
        self._grid: GridPyramid | None = None

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, truck_id: object) -> bool:
        return truck_id in self._slot_of

    def _grow(self) -> None:
        capacity = max(1024, 2 * self._capacity)
        extra = capacity - self._capacity
        self._normals = np.concatenate([self._normals, np.zeros((extra, 3))])
        self._lat = np.concatenate([self._lat, np.zeros(extra)])
        self._lon = np.concatenate([self._lon, np.zeros(extra)])
        self._time = np.concatenate([self._time, np.zeros(extra)])
        self._status = np.concatenate([self._status, np.full(extra, _EMPTY, dtype=np.int8)])
        self._caps = np.concatenate([self._caps, np.zeros(extra, dtype=np.uint64)])
        self._dirty = np.concatenate([self._dirty, np.zeros(extra, dtype=bool)])
        self._capacity = capacity

    def _mask_for(self, capabilities: frozenset[str]) -> int:
        mask = 0
        for name in capabilities:
            bit = self._bits.get(name)
            if bit is None:
                if len(self._bits) >= 64:
                    raise ValueError(f"more than 64 distinct capabilities; cannot add {name!r}")
                bit = self._bits[name] = 1 << len(self._bits)
            mask |= bit
        return mask

    def upsert(self, truck: TruckPosition) -> None:
        """Record a truck's report (new truck or update).  O(1)."""
        caps_mask = self._mask_for(truck.capabilities)
        slot = self._slot_of.get(truck.truck_id)
        if slot is None:
            if self._free:
                slot = self._free.pop()
            else:
                if self._size == self._capacity:
                    self._grow()
                slot = self._size
                self._size += 1
                self._ids.append(None)
                self._cap_names.append(frozenset())
            self._slot_of[truck.truck_id] = slot
            self._ids[slot] = truck.truck_id
            moved = True
        else:
            moved = truck.lat != self._lat[slot] or truck.lon != self._lon[slot]
        self._lat[slot], self._lon[slot], self._time[slot] = truck.lat, truck.lon, truck.time
        self._normals[slot] = _normal(truck.lat, truck.lon)
        self._status[slot] = _CODE[truck.availability]
        self._caps[slot] = caps_mask
        self._cap_names[slot] = truck.capabilities
        if moved and not self._dirty[slot]:
            self._dirty[slot] = True
            self._dirty_slots.append(slot)
            self._dirty_array = None

    def upsert_many(self, trucks: Iterable[TruckPosition]) -> None:
        for truck in trucks:
            self.upsert(truck)

    def set_availability(self, truck_id: TruckId, availability: Availability | str) -> None:
        """Change a truck's availability without a new position; ``KeyError`` if unknown."""
        self._status[self._slot_of[truck_id]] = _CODE[Availability(availability)]

    def remove(self, truck_id: TruckId) -> bool:
        slot = self._slot_of.pop(truck_id, None)
        if slot is None:
            return False
        self._status[slot] = _EMPTY
        self._ids[slot] = None
        self._free.append(slot)
        return True

    def get(self, truck_id: TruckId) -> TruckPosition | None:
        slot = self._slot_of.get(truck_id)
        if slot is None:
            return None
        return TruckPosition(
            truck_id, float(self._lat[slot]), float(self._lon[slot]), float(self._time[slot]),
            _AVAILABILITY[self._status[slot]], self._cap_names[slot],
        )

    def compact(self) -> None:
        """Rebuild the spatial grid now (otherwise done lazily by ``nearest``)."""
        present = np.flatnonzero(self._status[: self._size] != _EMPTY)
        self._dirty[: self._size] = False
        self._dirty_slots = []
        self._dirty_array = None
        if len(present) == 0:
            self._grid = None
            return
        normals = self._normals[present]
        if self._fixed_cell is not None:
            self._cell = self._fixed_cell
        elif self._cell is None or not 0.5 <= len(present) / max(1, self._cell_chosen_for) <= 2.0:
            self._cell = choose_cell(normals)
            self._cell_chosen_for = len(present)
        self._grid = GridPyramid(normals, present, self._cell)

    def _candidates_pending(self) -> np.ndarray:
        if self._dirty_array is None:
            self._dirty_array = np.array(self._dirty_slots, dtype=np.int64)
        return self._dirty_array

    def nearest(
        self,
        lat: float,
        lon: float,
        k: int = 5,
        *,
        now: float,
        max_km: float | None = None,
        capability: str | None = None,
        max_age_s: float | None = None,
        include_stale: bool = False,
    ) -> list[NearbyTruck]:
        """The ``k`` nearest AVAILABLE trucks by exact geodesic distance, nearest first.

        ``max_km`` caps the distance; ``capability`` requires that capability; with ``max_age_s``,
        positions older than that at ``now`` are left out, or returned with ``stale=True`` when
        ``include_stale``.  Raises ``ValueError`` for impossible arguments.
        """
        lat, lon = check_position(lat, lon)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not math.isfinite(now):
            raise ValueError(f"now must be POSIX seconds, got {now!r}")
        if max_km is not None and not (math.isfinite(max_km) and max_km > 0):
            raise ValueError(f"max_km must be positive, got {max_km!r}")
        if max_age_s is not None and not (math.isfinite(max_age_s) and max_age_s >= 0):
            raise ValueError(f"max_age_s must be >= 0, got {max_age_s!r}")
        bit = 0
        if capability is not None:
            bit = self._bits.get(capability, 0)
            if not bit:
                return []
        fresh_after = None if max_age_s is None else now - max_age_s
        drop_stale = fresh_after is not None and not include_stale

        if self._grid is None or len(self._dirty_slots) > max(256, len(self._slot_of) // 16):
            self.compact()

        def eligible(slots: np.ndarray) -> np.ndarray:
            mask = self._status[slots] == _AVAILABLE
            if bit:
                mask &= (self._caps[slots] & np.uint64(bit)) != 0
            if drop_stale:
                mask &= self._time[slots] >= fresh_after
            return slots[mask]

        q = _normal(lat, lon)
        limit_m = math.inf if max_km is None else max_km * 1000.0
        levels = [] if self._grid is None else self._grid.levels
        level, rings = 0, 1
        while True:
            if level >= len(levels) or rings > _MAX_RINGS:
                cand, clearance = eligible(np.arange(self._size)), math.inf
            else:
                cand, clearance = levels[level].gather(q, rings)
                if self._dirty_slots:  # a moved truck is searched from the pending list instead
                    cand = np.concatenate([cand[~self._dirty[cand]], self._candidates_pending()])
                cand = eligible(cand)
            diff = self._normals[cand] - q
            chord = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            target = limit_m
            if len(cand) >= k:
                kth = float(np.partition(chord, k - 1)[k - 1])
                target = min(limit_m, MAX_CURVATURE_RADIUS_M * _angle(kth))
            if clearance == math.inf or MIN_CURVATURE_RADIUS_M * _angle(clearance) > target + _SLACK_M:
                break
            if not math.isfinite(target):  # too few candidates yet: look wider
                level, rings = level + 1, 1
                continue
            # Rings needed at this level for the clearance to pass the target; climb while that is many.
            needed = int(_chord_within(target) / levels[level].cell) + 1
            if needed <= rings:
                needed = rings + 1
            while needed > 2 and level + 1 < len(levels):
                level += 1
                needed = int(_chord_within(target) / levels[level].cell) + 1
            rings = needed

        # Lower bound R_MIN * angle <= target, written on chords (monotone) to skip an arcsin per truck.
        cand = cand[chord <= _chord_within(target)]
        count = len(cand)
        _, _, dist = GEOD.inv(
            np.full(count, lon), np.full(count, lat), self._lon[cand], self._lat[cand]
        )
        ids = self._ids
        ranked = sorted(
            ((d, slot) for d, slot in zip(np.asarray(dist).tolist(), cand.tolist(), strict=True) if d <= limit_m),
            key=lambda pair: (pair[0], str(ids[pair[1]])),  # equal distances: by id, so answers are stable
        )
        out = []
        for distance, slot in ranked[:k]:
            fix_time = float(self._time[slot])
            out.append(
                NearbyTruck(
                    truck_id=self._ids[slot],  # type: ignore[arg-type]
                    lat=float(self._lat[slot]),
                    lon=float(self._lon[slot]),
                    distance_m=distance,
                    eta_s=distance / self._speed_ms,
                    age_s=max(0.0, now - fix_time),
                    stale=fresh_after is not None and fix_time < fresh_after,
                    availability=Availability.AVAILABLE,
                    capabilities=self._cap_names[slot],
                )
            )
        return out
