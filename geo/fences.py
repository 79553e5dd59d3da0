"""Geofence lookup and enter/exit detection.

Owns ``FenceIndex`` (which fences contain a position, for a vehicle's scope) and ``FenceTracker``
(per-vehicle inside-sets turned into ``geofence_enter`` / ``geofence_exit`` events).  Shapes and their
exact tests live in ``geo.fence_shapes``; this module only indexes and remembers.

The index is immutable: ``replace``/``reload`` compile only new or changed fences, build a fresh
shapely ``STRtree`` over the lon/lat boxes of every fence part (fences crossing the antimeridian are
filed under two boxes) and return a new index, which the owner swaps in (``FenceTracker.swap``).  A
lookup costs one tree query plus an exact test of the few fences whose boxes hold the point, so 10,000
fences cost about what 3 do.  Not thread-safe: use from the reactor thread (or one worker) only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Literal

import numpy as np
import shapely

from geo.fence_shapes import CompiledFence, Fence, FenceId, FencePart, ScopeId, compile_fence
from geo.geodesy import check_position

GeofenceEvent = Literal["geofence_enter", "geofence_exit"]
ENTER: GeofenceEvent = "geofence_enter"
EXIT: GeofenceEvent = "geofence_exit"


def _scope_ok(scope: ScopeId | None, scope_ids: Collection[ScopeId] | None) -> bool:
    return scope is None or scope_ids is None or scope in scope_ids


class FenceIndex:
    """Immutable spatial index of compiled fences.

    ``scope_ids`` in lookups: the owner ids the vehicle belongs to; fences with ``scope=None`` apply to
    every vehicle.  ``scope_ids=None`` ignores scopes altogether (an operator looking at the map).
    """

    __slots__ = ("_compiled", "_tree", "_entry_fence", "_entry_part", "_entry_scope")

    def __init__(self, compiled: Mapping[FenceId, CompiledFence] | None = None) -> None:
        self._compiled: dict[FenceId, CompiledFence] = dict(compiled or {})
        boxes: list[tuple[float, float, float, float]] = []
        self._entry_fence: list[FenceId] = []
        self._entry_part: list[FencePart] = []
        self._entry_scope: list[ScopeId | None] = []
        for fence_id, compiled_fence in self._compiled.items():
            for part in compiled_fence.parts:
                for box in part.boxes:
                    boxes.append(box)
                    self._entry_fence.append(fence_id)
                    self._entry_part.append(part)
                    self._entry_scope.append(compiled_fence.fence.scope)
        self._tree = shapely.STRtree(shapely.box(*np.array(boxes).T)) if boxes else None

    @classmethod
    def build(
        cls, fences: Iterable[Fence], on_error: Callable[[Fence, ValueError], None] | None = None
    ) -> FenceIndex:
        """Index of ``fences``.  A fence that cannot be compiled raises ``ValueError``, or, when
        ``on_error`` is given, is reported to it and left out (one bad row must not hide the rest)."""
        return cls()._rebuilt({}, fences, on_error)

    def replace(
        self,
        upsert: Iterable[Fence] = (),
        remove: Iterable[FenceId] = (),
        on_error: Callable[[Fence, ValueError], None] | None = None,
    ) -> FenceIndex:
        """New index with ``remove`` dropped, then ``upsert`` added or replaced (by id).

        Unchanged fences keep their compiled form.  On an error (without ``on_error``) nothing changes.
        """
        kept = dict(self._compiled)
        for fence_id in remove:
            kept.pop(fence_id, None)
        return self._rebuilt(kept, upsert, on_error)

    def reload(
        self, fences: Iterable[Fence], on_error: Callable[[Fence, ValueError], None] | None = None
    ) -> FenceIndex:
        """New index holding exactly ``fences``, reusing the compiled form of unchanged ones."""
        return self._rebuilt({}, fences, on_error)

    def _rebuilt(
        self,
        base: dict[FenceId, CompiledFence],
        fences: Iterable[Fence],
        on_error: Callable[[Fence, ValueError], None] | None,
    ) -> FenceIndex:
        compiled = dict(base)
        seen: set[FenceId] = set()
        for fence in fences:
            fence_id = getattr(fence, "id", None)
            if fence_id in seen:
                error = ValueError(f"fence {fence_id!r} given twice")
                if on_error is None:
                    raise error
                on_error(fence, error)
                continue
            seen.add(fence_id)  # type: ignore[arg-type]
            old = self._compiled.get(fence_id)  # type: ignore[arg-type]
            if old is not None and old.fence == fence:
                compiled[fence.id] = old
                continue
            try:
                compiled[fence.id] = compile_fence(fence)
            except ValueError as exc:
                if on_error is None:
                    raise
                on_error(fence, exc)
        return FenceIndex(compiled)

    def __len__(self) -> int:
        return len(self._compiled)

    def __contains__(self, fence_id: object) -> bool:
        return fence_id in self._compiled

    def __iter__(self) -> Iterator[Fence]:
        return (compiled.fence for compiled in self._compiled.values())

    def get(self, fence_id: FenceId) -> Fence | None:
        compiled = self._compiled.get(fence_id)
        return None if compiled is None else compiled.fence

    def containing(
        self, lat: float, lon: float, scope_ids: Collection[ScopeId] | None = ()
    ) -> frozenset[FenceId]:
        """Ids of the fences (applying to ``scope_ids``) that contain the position.

        Raises ``ValueError`` for an impossible position.
        """
        lat, lon = check_position(lat, lon)
        if self._tree is None:
            return frozenset()
        hits = self._tree.query(shapely.Point(lon, lat))
        if lon == -180.0:  # the seam belongs to boxes on both sides
            hits = np.concatenate([hits, self._tree.query(shapely.Point(180.0, lat))])
        found: set[FenceId] = set()
        entry_fence, entry_part, entry_scope = self._entry_fence, self._entry_part, self._entry_scope
        for entry in hits.tolist():
            fence_id = entry_fence[entry]
            if fence_id in found or not _scope_ok(entry_scope[entry], scope_ids):
                continue
            if entry_part[entry].covers(lat, lon):
                found.add(fence_id)
        return frozenset(found)

    def scan_containing(
        self, lat: float, lon: float, scope_ids: Collection[ScopeId] | None = ()
    ) -> frozenset[FenceId]:
        """``containing`` without the index: every fence tested (reference for tests and benchmarks)."""
        lat, lon = check_position(lat, lon)
        return frozenset(
            fence_id
            for fence_id, compiled in self._compiled.items()
            if _scope_ok(compiled.fence.scope, scope_ids) and compiled.covers(lat, lon)
        )

    def applies(self, fence_id: FenceId, scope_ids: Collection[ScopeId] | None) -> bool:
        """The fence exists and applies to a vehicle of ``scope_ids``."""
        compiled = self._compiled.get(fence_id)
        return compiled is not None and _scope_ok(compiled.fence.scope, scope_ids)

    def covers(self, fence_id: FenceId, lat: float, lon: float, margin_m: float = 0.0) -> bool:
        """The position is inside the fence widened by ``margin_m`` (False for an unknown fence)."""
        compiled = self._compiled.get(fence_id)
        if compiled is None:
            return False
        lat, lon = check_position(lat, lon)
        return compiled.covers(lat, lon, margin_m)


def _event_order(event: tuple[FenceId, GeofenceEvent]) -> tuple[int, bool, FenceId]:
    fence_id, kind = event
    return (0 if kind == EXIT else 1, isinstance(fence_id, str), fence_id)


class FenceTracker:
    """Turns each vehicle's positions into enter/exit events, once per crossing.

    Enter fires when a position is inside a fence the vehicle was not in; exit fires when a position is
    outside a fence the vehicle was in, by more than ``hysteresis_m`` metres (so GPS jitter along an
    edge does not flap).  The first position of a vehicle with no remembered state enters every fence
    it is in; restore state with ``import_state``/``restore`` after a restart to avoid that.  A fence
    that disappears from the index, or no longer applies to the vehicle, is forgotten without an exit
    event (the vehicle did not move).  Positions must be valid fixes: filter ``valid=False`` first.
    """

    def __init__(self, index: FenceIndex, hysteresis_m: float = 0.0) -> None:
        if not hysteresis_m >= 0.0:
            raise ValueError(f"hysteresis_m must be >= 0, got {hysteresis_m!r}")
        self._index = index
        self._hysteresis_m = float(hysteresis_m)
        self._inside: dict[object, frozenset[FenceId]] = {}

    @property
    def index(self) -> FenceIndex:
        return self._index

    def swap(self, index: FenceIndex) -> None:
        """Use a reloaded index from the next position on; remembered inside-sets are kept."""
        self._index = index

    def update(
        self, vehicle_id: object, lat: float, lon: float, scope_ids: Collection[ScopeId] | None = ()
    ) -> list[tuple[FenceId, GeofenceEvent]]:
        """Events caused by this position (exits first), and remember where the vehicle now is.

        Raises ``ValueError`` for an impossible position and then remembers nothing new.
        """
        index = self._index
        now_in = index.containing(lat, lon, scope_ids)
        before = self._inside.get(vehicle_id, frozenset())
        events: list[tuple[FenceId, GeofenceEvent]] = []
        still_in = set(now_in)
        for fence_id in before - now_in:
            if not index.applies(fence_id, scope_ids):
                continue
            if self._hysteresis_m > 0 and index.covers(fence_id, lat, lon, self._hysteresis_m):
                still_in.add(fence_id)
                continue
            events.append((fence_id, EXIT))
        events.extend((fence_id, ENTER) for fence_id in now_in - before)
        if still_in:
            self._inside[vehicle_id] = frozenset(still_in)
        else:
            self._inside.pop(vehicle_id, None)
        events.sort(key=_event_order)
        return events

    def inside(self, vehicle_id: object) -> frozenset[FenceId]:
        """Fences the vehicle is currently counted inside."""
        return self._inside.get(vehicle_id, frozenset())

    def restore(self, vehicle_id: object, fence_ids: Iterable[FenceId]) -> None:
        """Set one vehicle's inside-set (e.g. read back from live state)."""
        fence_ids = frozenset(fence_ids)
        if fence_ids:
            self._inside[vehicle_id] = fence_ids
        else:
            self._inside.pop(vehicle_id, None)

    def forget(self, vehicle_id: object) -> None:
        self._inside.pop(vehicle_id, None)

    def export_state(self) -> dict[str, object]:
        """JSON-ready snapshot of every vehicle's inside-set (ids keep their int/str type)."""
        return {
            "version": 1,
            "inside": [[vehicle_id, sorted(ids, key=lambda i: (isinstance(i, str), i))]
                       for vehicle_id, ids in self._inside.items()],
        }

    def import_state(self, state: Mapping[str, object]) -> None:
        """Replace all inside-sets with an ``export_state`` snapshot; ``ValueError`` if malformed
        (and then nothing changes)."""
        if not isinstance(state, Mapping) or state.get("version") != 1:
            raise ValueError("fence tracker state: expected a mapping with version 1")
        rows = state.get("inside")
        if not isinstance(rows, list):
            raise ValueError("fence tracker state: 'inside' must be a list")
        inside: dict[object, frozenset[FenceId]] = {}
        for row in rows:
            if not (isinstance(row, list | tuple) and len(row) == 2 and isinstance(row[1], list | tuple)):
                raise ValueError(f"fence tracker state: bad row {row!r}")
            vehicle_id, ids = row
            if isinstance(vehicle_id, list | dict) or any(
                isinstance(i, bool) or not isinstance(i, int | str) for i in ids
            ):
                raise ValueError(f"fence tracker state: bad row {row!r}")
            if ids:
                inside[vehicle_id] = frozenset(ids)
        self._inside = inside
