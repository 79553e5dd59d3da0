"""Creating campaigns from numbers, plates or a fleet filter, and state changes with their events."""

import pytest
import pytest_twisted
from twisted.internet import reactor

from crm.campaign_records import CampaignStateError
from crm.db import Database
from crm.migrate import upgrade
from notify.campaign_spec import CampaignSpecError
from notify.campaigns import CampaignControl, source_from_json
from tests.crm.storage_contract import rows
from watchline.mq.fake import FakeBus

FIELDS = {"name": "Inspection", "template": "{{ name }}, {{ plate }} is due on {{ due | default('soon') }}",
          "lines": 3}


@pytest_twisted.async_yield_fixture
async def control(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    try:
        await db.vehicles.import_rows(rows(
            {"plate": "G1", "terminal_id": "21", "tier": "gold", "owner_phone": "13800138001", "owner_name": "A"},
            {"plate": "G2", "terminal_id": "22", "tier": "gold", "owner_phone": "13800138002", "owner_name": "B"},
            {"plate": "N1", "terminal_id": "23", "owner_phone": "13800138003", "owner_name": "C"}), "t")
        yield CampaignControl(db, FakeBus(), reactor), db
    finally:
        await db.stopService()


@pytest_twisted.ensureDeferred
async def test_from_numbers_with_variables_and_start(control):
    ctl, db = control
    body = {"numbers": ["13800138000", {"phone": "+86 139 0013 9000", "name": "Li", "plate": "粤b1",
                                         "variables": {"due": "June 30"}}, "138-0013-8000"]}
    c = await ctl.create(FIELDS, source_from_json(body, "CN"), "alice", start=True)
    assert c.status == "running"
    got = await db.campaigns.numbers(c.id)
    assert [(n.phone, n.plate, n.name, n.variables) for n in got] == [
        ("+8613800138000", None, None, {}), ("+8613900139000", "粤B1", "Li", {"due": "June 30"})]
    ctl.bus.assert_produced(f"campaign.{c.id}.status", status="running", id=c.id)


@pytest_twisted.ensureDeferred
async def test_from_plates_and_from_a_fleet_filter(control):
    ctl, db = control
    by_plate = await ctl.create(FIELDS, source_from_json({"plates": ["n1", "G2"]}, "CN"), "alice")
    assert [(n.phone, n.plate, n.name) for n in await db.campaigns.numbers(by_plate.id)] == [
        ("+8613800138003", "N1", "C"), ("+8613800138002", "G2", "B")]
    gold = await ctl.create(FIELDS, source_from_json({"filter": {"tier": "gold"}}, "CN"), "alice")
    assert [n.plate for n in await db.campaigns.numbers(gold.id)] == ["G1", "G2"]
    assert gold.status == "draft"


@pytest.mark.parametrize("body, fields, field", [
    ({"numbers": ["13800138000", "12"]}, {}, "numbers[1].phone"),
    ({"numbers": []}, {}, "numbers"),
    ({"numbers": [{"phone": "13800138000", "variables": {"due date": "x"}}]}, {}, "numbers[0].variables"),
    ({"plates": ["G1"], "numbers": ["13800138000"]}, {}, "numbers"),
    ({}, {}, "numbers"),
    ({"plates": ["G1", "NOPE"]}, {}, "plates[1]"),
    ({"filter": {"tier": "diamond"}}, {}, "filter.tier"),
    ({"filter": {"kind": "rescue"}}, {}, "numbers"),  # found nobody
    ({"numbers": ["13800138000"]}, {"template": "{{ fee }}"}, "template"),
    ({"numbers": ["13800138000"]}, {"lines": "ten"}, "lines"),
])
@pytest_twisted.ensureDeferred
async def test_bad_input_names_the_field_and_writes_nothing(control, body, fields, field):
    ctl, db = control
    with pytest.raises(CampaignSpecError) as e:
        await ctl.create({**FIELDS, **fields}, source_from_json(body, "CN"), "alice")
    assert e.value.field == field
    assert await db.campaigns.search() == []


@pytest_twisted.ensureDeferred
async def test_changes_publish_their_status(control):
    ctl, db = control
    c = await ctl.create(FIELDS, source_from_json({"numbers": ["13800138000"]}, "CN"), "alice")
    for action, status in (("start", "running"), ("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")):
        assert (await ctl.change(c.id, action, "bob")).status == status
        ctl.bus.assert_produced(f"campaign.{c.id}.status", status=status)
    with pytest.raises(CampaignStateError):
        await ctl.change(c.id, "start", "bob")
    assert (await ctl.progress([c.id]))[c.id].outcomes == {"cancelled": 1}
