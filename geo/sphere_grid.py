"""Cube-cell grid over unit normals: the spatial prefilter of the nearest-truck search.

Owns the bulk-built part of ``RescueFleetIndex`` and the guarantee that makes it safe.

Positions are geodetic unit normals, i.e. points on the unit sphere, so there is no antimeridian and no
pole to special-case.  The grid cuts the cube [-1, 1]^3 into cubes of side ``cell`` and keeps, per
occupied cube, the array of slots inside it.  ``gather(q, rings)`` returns every point in
the (2 rings + 1)^3 block of cubes around the query's cube, plus ``clearance``: the distance from the
query to the outside of that block.  A point not gathered lies outside the block, so its chord to the
query is strictly greater than ``clearance``.  ``geo.geodesy`` turns chords into geodesic bounds.
"""

from __future__ import annotations

import math

import numpy as np


class CellGrid:
    """Static grid of ``slots`` located at ``normals`` (shape ``(n, 3)``)."""

    __slots__ = ("cell", "_side", "_last", "_cells", "_empty")

    def __init__(self, normals: np.ndarray, slots: np.ndarray, cell: float) -> None:
        if not 1e-6 <= cell <= 2.0:
            raise ValueError(f"cell size {cell!r} outside [1e-6, 2]")
        self.cell = float(cell)
        self._side = int(math.floor(2.0 / cell)) + 3  # cube indices per axis run 0 .. floor(2 / cell)
        # ceil(2 / cell) cubes tile [-1, 1] per axis; a coordinate of exactly 1.0 (a pole, say) belongs
        # to the last of them, not to one past the edge that no block would ever reach.
        self._last = math.ceil(2.0 / cell) - 1
        cube = np.minimum(np.floor((np.asarray(normals, dtype=float) + 1.0) / self.cell).astype(np.int64), self._last)
        keys = (cube[:, 0] * self._side + cube[:, 1]) * self._side + cube[:, 2]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        members = np.asarray(slots, dtype=np.int64)[order]
        unique, starts = np.unique(sorted_keys, return_index=True)
        # A dict of small arrays: a query touches 27 cubes, and 27 dict look-ups beat any numpy pipeline.
        self._cells = dict(zip(unique.tolist(), np.split(members, starts[1:]), strict=True))
        self._empty = members[:0]

    def __len__(self) -> int:
        return sum(len(a) for a in self._cells.values())

    def gather(self, q: tuple[float, float, float], rings: int) -> tuple[np.ndarray, float]:
        """Slots in the block of cubes within ``rings`` of the query's cube, and the block clearance."""
        cell, side = self.cell, self._side
        cube = [min(math.floor((c + 1.0) / cell), self._last) for c in q]
        # Clip the block to the index range: an index outside it would alias another cube (duplicates).
        xs, ys, zs = (range(max(0, i - rings), min(side, i + rings + 1)) for i in cube)
        get = self._cells.get
        parts = [a for x in xs for y in ys for z in zs if (a := get((x * side + y) * side + z)) is not None]
        found = np.concatenate(parts) if parts else self._empty
        clearance = math.inf
        for c, i in zip(q, cube, strict=True):
            low = (i - rings) * cell - 1.0
            high = (i + rings + 1) * cell - 1.0
            # A face beyond the unit cube has nothing behind it.
            if low > -1.0:
                clearance = min(clearance, c - low)
            if high < 1.0:
                clearance = min(clearance, high - c)
        return found, clearance


class GridPyramid:
    """The same points in grids of growing cube side (x4 per level).

    The finest level suits dense cities; a query whose answer lies farther away (countryside, or a rare
    capability) climbs to a level where a few rings reach it instead of looking up thousands of cubes.
    Every level holds every point, so any level gives a complete answer.
    """

    __slots__ = ("levels",)

    def __init__(self, normals: np.ndarray, slots: np.ndarray, finest_cell: float, factor: float = 4.0) -> None:
        self.levels: list[CellGrid] = []
        cell = finest_cell
        while True:
            self.levels.append(CellGrid(normals, slots, cell))
            if cell >= 0.25 or len(self.levels) == 8:  # 0.25 ~ 1,600 km: a full scan is as cheap
                return
            cell = min(2.0, cell * factor)


def choose_cell(normals: np.ndarray, per_cell: float = 6.0) -> float:
    """Cube side at which a typical point shares its cube with about ``per_cell`` points.

    "Typical point" weighs each cube by its population (sum of count^2 / n), so a dense city decides
    the finest level rather than the empty countryside.
    """
    normals = np.asarray(normals, dtype=float)
    if len(normals) <= per_cell:
        return 2.0

    def crowding(cell: float) -> float:
        cube = np.floor((normals + 1.0) / cell).astype(np.int64)
        side = int(math.floor(2.0 / cell)) + 3
        _, counts = np.unique((cube[:, 0] * side + cube[:, 1]) * side + cube[:, 2], return_counts=True)
        return float(np.dot(counts, counts)) / len(normals)

    low, high = 1e-6, 2.0  # crowding(low) is ~1 (points rarely share a 6 m cube), crowding(high) is ~n
    for _ in range(8):
        mid = math.sqrt(low * high)
        if crowding(mid) < per_cell:
            low = mid
        else:
            high = mid
    return high
