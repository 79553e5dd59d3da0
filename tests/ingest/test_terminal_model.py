"""The fleet's device model reaches the terminal servers in TerminalInfo (vendor decoding depends on it)."""

import pytest
import pytest_twisted
from twisted.internet import reactor

from crm.db import Database
from crm.migrate import upgrade
from tests.crm.storage_contract import rows


@pytest.fixture
def db(sqlite_url):
    database = Database(sqlite_url, reactor)
    upgrade(database.engine)
    database.startService()
    database.vehicles.import_rows_blocking(rows({"plate": "M1", "terminal_id": "0019111110000", "model": "MV710G"},
                                                {"plate": "M2", "terminal_id": "13800000002"}))
    yield database
    pytest_twisted.blockon(database.stopService())


@pytest_twisted.ensureDeferred
async def test_lookups_carry_the_vehicles_model(db):
    one = await db.vehicles.lookup_terminal("jt808", "19111110000")
    assert (one.plate, one.model) == ("M1", "MV710G")
    found = await db.vehicles.lookup_terminals("jt808", ["019111110000", "13800000002", "13800000009"])
    assert {k: (v.plate, v.model) for k, v in found.items()} == {
        "19111110000": ("M1", "MV710G"), "13800000002": ("M2", None)}  # the unknown terminal is absent
