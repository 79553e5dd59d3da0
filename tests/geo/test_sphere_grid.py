"""CellGrid: gathered blocks and the clearance guarantee the nearest-truck proof rests on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.geodesy import unit_normals
from geo.sphere_grid import CellGrid, GridPyramid, choose_cell


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    cell=st.floats(1e-4, 2.0),
    rings=st.integers(0, 3),
    centre=st.sampled_from([(0.0, 0.0), (31.0, 121.0), (89.999, 10.0), (-90.0, 0.0), (0.0, 180.0)]),
)
def test_points_left_out_are_farther_than_the_clearance(seed, cell, rings, centre):
    rng = np.random.default_rng(seed)
    spread = rng.choice([0.01, 1.0, 30.0])
    lats = np.clip(centre[0] + rng.normal(0, spread, 500), -90, 90)
    lons = centre[1] + rng.normal(0, spread, 500)
    normals = unit_normals(lats, lons)
    grid = CellGrid(normals, np.arange(500), cell)
    q = tuple(unit_normals(np.array([centre[0]]), np.array([centre[1]]))[0])
    found, clearance = grid.gather(q, rings)
    assert len(set(found.tolist())) == len(found)
    chords = np.linalg.norm(normals - np.array(q), axis=1)
    outside = np.setdiff1d(np.arange(500), found)
    assert np.all(chords[outside] > clearance)
    assert clearance >= rings * cell - 1e-12
    assert len(found) > 0 or np.all(chords > cell * rings)


def test_a_block_covering_the_sphere_has_infinite_clearance():
    normals = unit_normals(np.array([0.0, 45.0, -80.0]), np.array([0.0, 100.0, -170.0]))
    found, clearance = CellGrid(normals, np.arange(3), 2.0).gather((1.0, 0.0, 0.0), 2)
    assert sorted(found.tolist()) == [0, 1, 2] and clearance == float("inf")


def test_choose_cell_tracks_density():
    rng = np.random.default_rng(5)
    city = unit_normals(31.2 + rng.normal(0, 0.05, 5000), 121.5 + rng.normal(0, 0.05, 5000))
    country = unit_normals(rng.uniform(20, 40, 5000), rng.uniform(100, 120, 5000))
    assert choose_cell(city) < choose_cell(country) / 5
    assert choose_cell(city[:3]) == 2.0


def test_pyramid_levels_grow_and_each_holds_everything():
    rng = np.random.default_rng(6)
    normals = unit_normals(rng.uniform(-90, 90, 300), rng.uniform(-180, 180, 300))
    pyramid = GridPyramid(normals, np.arange(300), 1e-3)
    cells = [level.cell for level in pyramid.levels]
    assert cells == sorted(cells) and cells[-1] >= 0.25 and len(cells) > 1
    assert all(len(level) == 300 for level in pyramid.levels)
    with pytest.raises(ValueError):
        CellGrid(normals, np.arange(300), 0.0)


def test_a_point_on_the_pole_is_in_the_block_that_claims_the_whole_sphere():
    # Found by hypothesis: z == 1.0 exactly fell in a cube past the edge, left out with clearance inf.
    normals = unit_normals(np.array([90.0, 31.0]), np.array([0.0, 121.0]))
    q = tuple(unit_normals(np.array([31.0]), np.array([121.0]))[0])
    found, clearance = CellGrid(normals, np.arange(2), 2.0).gather(q, 0)
    assert sorted(found.tolist()) == [0, 1] and clearance == float("inf")
