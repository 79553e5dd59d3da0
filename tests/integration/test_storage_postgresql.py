"""The storage contract (tests/crm/storage_contract.py) on a real PostgreSQL."""

import pytest
import pytest_twisted
import sqlalchemy as sa
from twisted.internet import reactor

from crm.db import Database
from crm.migrate import current_revision, head_revision, upgrade
from tests.crm.storage_contract import StorageContract


@pytest.fixture
def database(pg_url):
    # Sessions in a time zone east of UTC, as a server in China runs: a timestamp bound with the wrong
    # type would be stored 8 hours off, and the contract's time checks would see it.
    url = sa.make_url(pg_url)
    url = url.update_query_dict({"options": url.query["options"] + " -ctimezone=Asia/Shanghai"})
    db = Database(url.render_as_string(hide_password=False), reactor)
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision(db.engine)
    db.startService()
    yield db
    pytest_twisted.blockon(db.stopService())


class TestStoragePostgresql(StorageContract):
    pass
