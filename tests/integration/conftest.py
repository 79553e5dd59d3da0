"""Fixtures for tests against the real services on 127.0.0.1 (PostgreSQL, Redis, RabbitMQ, sipp).

Each fixture fails the test under CI=true when its service is missing (tests/conftest.require_service).
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import require_service

PG_URL = os.environ.get("WATCHLINE_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose connections use a fresh schema, dropped afterwards."""
    url = sa.make_url(PG_URL)
    require_service("PostgreSQL", url.host or "127.0.0.1", url.port or 5432)
    schema = f"wl_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
