"""``db.fences`` part of the storage contract (run on SQLite and PostgreSQL through StorageContract)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer

from crm.fences import FenceDraft, FenceError, draft_from_json
from geo.fence_shapes import CircleFence, CorridorFence, PolygonFence
from geo.fences import FenceIndex

# A concave "U" around (31.0, 121.0): the notch between the arms is outside.
U_SHAPE = [[31.00, 121.00], [31.00, 121.03], [31.03, 121.03], [31.03, 121.02], [31.01, 121.02],
           [31.01, 121.01], [31.03, 121.01], [31.03, 121.00]]


def circle(name="Depot", lat=31.2, lon=121.5, radius_m=500.0, owner_id=None) -> FenceDraft:
    return FenceDraft(name, "circle", {"lat": lat, "lon": lon, "radius_m": radius_m}, owner_id)


class FencesContract:
    @pytest_twisted.ensureDeferred
    async def test_fence_crud_round_trip_as_geo_fences(self, database):
        from tests.crm.storage_contract import rows

        await database.vehicles.import_rows(rows({"plate": "F1", "terminal_id": "71"}), "t")
        owner = (await database.vehicles.get_by_plate("F1")).owner.id
        depot = await database.fences.create(circle(), "alice")
        u = await database.fences.create(FenceDraft("U", "polygon", {"points": U_SHAPE}, owner), "alice")
        road = await database.fences.create(draft_from_json(
            {"name": "G60", "kind": "corridor", "path": [[31.0, 121.0], [31.1, 121.2]], "width_m": 100}), "bob")
        assert isinstance(depot.fence, CircleFence) and depot.fence.radius_m == 500.0
        assert isinstance(u.fence, PolygonFence) and u.fence.scope == owner and len(u.fence.ring) == 8
        assert isinstance(road.fence, CorridorFence) and road.fence.width_m == 100.0
        assert [f.id for f in await database.fences.search()] == [depot.id, u.id, road.id]
        assert [f.id for f in await database.fences.search(owner_id=owner)] == [u.id]
        assert road.to_json()["path"] == [[31.0, 121.0], [31.1, 121.2]] and road.to_json()["kind"] == "corridor"

        moved = await database.fences.update(depot.id, circle("Depot 2", radius_m=800), "bob")
        assert (moved.name, moved.fence.radius_m, moved.revision) == ("Depot 2", 800.0, 2)
        assert moved.updated_at >= depot.updated_at and moved.created_at == depot.created_at
        await database.fences.delete(u.id, "bob")
        assert await database.fences.get(u.id) is None
        assert [f.id for f in await database.fences.active()] == [depot.id, road.id]
        with pytest.raises(LookupError):
            await database.fences.update(u.id, circle(), "bob")
        with pytest.raises(LookupError):
            await database.fences.delete(u.id, "bob")
        index = FenceIndex.build(f.fence for f in await database.fences.active())
        assert index.containing(31.2, 121.5) == {depot.id}
        actions = [e.action for e in await database.audit.entries("fence")]
        assert sorted(actions) == ["fence_created"] * 3 + ["fence_deleted", "fence_updated"]

    @pytest_twisted.ensureDeferred
    async def test_version_moves_with_every_write_and_only_then(self, database):
        v0 = await database.fences.version()
        assert v0.rows == 0 and v0.newest is None
        fence = await database.fences.create(circle(), "t")
        v1 = await database.fences.version()
        assert v1 != v0 and v1 == await database.fences.version()
        await database.fences.update(fence.id, circle(radius_m=600), "t")
        v2 = await database.fences.version()
        await database.fences.delete(fence.id, "t")
        v3 = await database.fences.version()
        assert len({v0, v1, v2, v3}) == 4
        assert v3.newest is not None and v3.newest.tzinfo is not None

    @pytest_twisted.ensureDeferred
    async def test_concurrent_updates_all_counted_in_the_version(self, database):
        fences = [await database.fences.create(circle(f"C{i}"), "t") for i in range(5)]
        before = await database.fences.version()
        await defer.gatherResults([defer.Deferred.fromCoroutine(
            database.fences.update(f.id, circle(f"C{i}", radius_m=900), "t")) for i, f in enumerate(fences)])
        after = await database.fences.version()
        assert after.revisions == before.revisions + 5 and after.rows == before.rows

    @pytest_twisted.ensureDeferred
    async def test_unknown_owner_is_refused_naming_the_field(self, database):
        with pytest.raises(FenceError) as err:
            await database.fences.create(circle(owner_id=424242), "t")
        assert err.value.field == "owner_id"
        assert await database.fences.search() == []

    @pytest_twisted.ensureDeferred
    async def test_vehicle_scopes(self, database):
        from tests.crm.storage_contract import rows

        await database.vehicles.import_rows(rows({"plate": "S1", "terminal_id": "81"},
                                                 {"plate": "S2", "terminal_id": "82", "owner_phone": "13900139000"}),
                                            "t")
        scopes = await database.fences.vehicle_scopes()
        assert scopes["S1"] == (await database.vehicles.get_by_plate("S1")).owner.id
        assert scopes["S1"] != scopes["S2"]
        assert await database.fences.vehicle_scope("S2") == scopes["S2"]
        assert await database.fences.vehicle_scope("NOPE") is None
