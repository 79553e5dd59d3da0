"""The storage contract (tests/crm/storage_contract.py) on a real PostgreSQL."""

import pytest
import pytest_twisted
from twisted.internet import reactor

from crm.db import Database
from crm.migrate import current_revision, head_revision, upgrade
from tests.crm.storage_contract import StorageContract


@pytest.fixture
def database(pg_url):
    db = Database(pg_url, reactor)
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision(db.engine)
    db.startService()
    yield db
    pytest_twisted.blockon(db.stopService())


class TestStoragePostgresql(StorageContract):
    pass
