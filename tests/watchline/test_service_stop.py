"""Shutdown: the parts stop one by one, last started first, so late work still finds the database."""

from __future__ import annotations

import pytest_twisted
from twisted.application import service
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred

from crm.migrate import upgrade
from watchline import service as watchline_service
from watchline.config import load_config
from watchline.service import Watchline


class LateWriter(service.Service):
    """Like a call hanging up at shutdown: its stop writes to the database a moment later."""

    def __init__(self, db) -> None:
        self.db = db
        self.found = "not stopped"

    def stopService(self):  # noqa: N802
        super().stopService()

        async def finish():
            await task.deferLater(reactor, 0.05, lambda: None)
            self.found = await self.db.vehicles.get_by_plate("none")

        return Deferred.fromCoroutine(finish())


class Stuck(service.Service):
    def stopService(self):  # noqa: N802
        super().stopService()
        return Deferred()  # never fires


def embedded(tmp_path) -> Watchline:
    config = load_config(environ={"WATCHLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
                                  "WATCHLINE_API_LISTEN": "", "WATCHLINE_INGEST_JT808": "",
                                  "WATCHLINE_INGEST_GT06": "", "WATCHLINE_SIP_LISTEN": ""})
    app = Watchline(config, reactor)
    upgrade(app.db.engine)
    return app


@pytest_twisted.ensureDeferred
async def test_a_part_stopping_late_still_has_the_database(tmp_path):
    app = embedded(tmp_path)
    writer = LateWriter(app.db)
    writer.setServiceParent(app)
    app.startService()
    await app.stopService()
    assert writer.found is None  # the query ran (no such plate) instead of "database pool is not running"
    assert not app.db.running and not app.running


@pytest_twisted.ensureDeferred
async def test_a_part_that_never_stops_does_not_hold_up_shutdown(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(watchline_service, "STOP_TIMEOUT", 0.1)
    app = embedded(tmp_path)
    Stuck().setServiceParent(app)
    app.startService()
    await app.stopService()
    assert not app.db.running
    assert "stopping Stuck failed" in caplog.text


@pytest_twisted.ensureDeferred
async def test_stopping_closes_the_terminals_connections(tmp_path):
    from twisted.internet import protocol
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from tests.conftest import free_port

    jt808, gt06 = free_port(), free_port()
    config = load_config(environ={"WATCHLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
                                  "WATCHLINE_API_LISTEN": "", "WATCHLINE_SIP_LISTEN": "",
                                  "WATCHLINE_INGEST_JT808": f"tcp:{jt808}:interface=127.0.0.1",
                                  "WATCHLINE_INGEST_GT06": f"tcp:{gt06}:interface=127.0.0.1"})
    app = Watchline(config, reactor)
    upgrade(app.db.engine)
    app.startService()

    class Terminal(protocol.Protocol):
        def __init__(self):
            self.closed = Deferred()

        def connectionLost(self, reason=None):  # noqa: N802
            self.closed.callback(None)

    terminals = [Terminal(), Terminal()]
    try:
        for port, term in zip((jt808, gt06), terminals, strict=True):
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), term)
        for _ in range(100):  # bounded: the server side has accepted both
            if app.jt808.connections and app.gt06.connections:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
    finally:
        await app.stopService()
    for term in terminals:  # the server closed them (a still-open one would never fire)
        await term.closed.addTimeout(5, reactor)
    assert not app.jt808.connections and not app.gt06.connections
