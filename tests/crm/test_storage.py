"""The storage contract on the embedded default (SQLite)."""

import pytest
import pytest_twisted
from twisted.internet import reactor

from crm.db import Database
from crm.migrate import upgrade
from tests.crm.storage_contract import StorageContract


@pytest.fixture
def database(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    yield db
    pytest_twisted.blockon(db.stopService())


class TestStorageSqlite(StorageContract):
    pass
