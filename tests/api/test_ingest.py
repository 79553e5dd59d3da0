"""The platform ingest API over loopback HTTP: roles, field paths, idempotent repeats, 503 on bus trouble."""

import json

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor

from api.app import WatchlineApi
from crm.db import Database
from crm.migrate import upgrade
from ingest.pipeline import IngestPipeline
from tests.crm.storage_contract import rows
from watchline.config import load_config
from watchline.live.memory import MemoryLiveState
from watchline.mq.fake import FakeBus

REPORT = {"report_id": "r-1", "terminal_id": "car-9", "time": "2026-05-01T10:00:00Z", "lat": 22.5, "lon": 114.1,
          "alarms": ["sos"]}
TRACCAR = {"event": {"id": 5, "type": "alarm", "eventTime": "2026-05-01T08:00:02Z", "attributes": {"alarm": "sos"}},
           "position": {"id": 9, "fixTime": "2026-05-01T08:00:00Z", "latitude": 31.2, "longitude": 121.4,
                        "speed": 10, "attributes": {}},
           "device": {"id": 7, "uniqueId": "car-9"}}


class FlakyBus(FakeBus):
    down = False

    async def produce(self, routing_key, message):
        if self.down:
            from watchline.mq import BusUnavailable

            raise BusUnavailable("broker down")
        return await super().produce(routing_key, message)


@pytest.fixture
def api(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    db.vehicles.import_rows_blocking(rows({"plate": "P9", "terminal_id": "car-9", "protocol": "http"}))
    live = MemoryLiveState(reactor)
    live.startService()
    bus = FlakyBus()
    app = WatchlineApi(db, live, load_config(environ={}), ingest=IngestPipeline(db.vehicles, bus, reactor))
    port = reactor.listenTCP(0, app.site(), interface="127.0.0.1")
    tokens = {r: db.users.issue_token_blocking(r, f"{r}-1") for r in ("platform", "agent")}
    yield f"http://127.0.0.1:{port.getHost().port}/api/v1/ingest", tokens, bus
    pytest_twisted.blockon(port.stopListening())
    live.stopService()
    pytest_twisted.blockon(db.stopService())


async def post(url, token, body):
    resp = await treq.post(url.encode(), json.dumps(body).encode(), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return resp.code, json.loads(await resp.content())


@pytest_twisted.ensureDeferred
async def test_reports_are_accepted_once(api):
    base, tokens, bus = api
    assert await post(f"{base}/reports", tokens["platform"], {"reports": [REPORT, dict(REPORT, report_id="r-2")]}) \
        == (200, {"accepted": 2, "duplicates": 0})
    assert await post(f"{base}/reports", tokens["platform"], REPORT) == (200, {"accepted": 0, "duplicates": 1})
    produced = bus.produced("report.#")
    assert len(produced) == 2 and produced[0][1]["plate"] == "P9" and produced[0][1]["alarms"] == ["sos"]
    assert produced[0][1]["report_id"] == "platform-1:r-1"


@pytest_twisted.ensureDeferred
async def test_traccar_forward(api):
    base, tokens, bus = api
    assert await post(f"{base}/traccar", tokens["platform"], TRACCAR) == (200, {"accepted": 1, "duplicates": 0})
    (key, message), = bus.produced("report.#")
    assert key == "report.traccar.car-9" and message["fix"]["speed_kmh"] == 18.52


@pytest_twisted.ensureDeferred
async def test_bad_body_and_roles(api):
    base, tokens, _ = api
    code, err = await post(f"{base}/reports", tokens["platform"], {"reports": [REPORT, dict(REPORT, lat=99)]})
    assert code == 400 and err["error"]["field"] == "reports[1].lat"
    code, err = await post(f"{base}/traccar", tokens["platform"], {"position": {}, "device": {"uniqueId": "x"}})
    assert code == 400 and err["error"]["field"] == "position.latitude"
    code, _ = await post(f"{base}/reports", tokens["agent"], REPORT)
    assert code == 403
    code, _ = await post(f"{base}/reports", "wl_nope", REPORT)
    assert code == 401


@pytest_twisted.ensureDeferred
async def test_bus_down_is_503_and_the_retry_is_not_a_duplicate(api):
    base, tokens, bus = api
    bus.down = True
    code, err = await post(f"{base}/reports", tokens["platform"], REPORT)
    assert code == 503 and err["error"]["code"] == "unavailable"
    bus.down = False
    assert await post(f"{base}/reports", tokens["platform"], REPORT) == (200, {"accepted": 1, "duplicates": 0})
