"""Black box: a work order created through the API of the service tree texts the customer over SMPP when
``[notify]`` has SMS (plate and ETA in the text), and the incident's timeline shows the text and whether
it went — also when no channel is configured."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from alarms.dispatch import TimelineNotices
from alarms.report import Fix, Report
from crm.fleet import validate
from crm.incidents import NewIncident
from crm.migrate import upgrade
from notify.channels.sms_parts import decode_parts
from notify.notices import Notices
from tests.api.test_vehicles import call
from tests.conftest import free_port
from tests.notify.smsc import Smsc
from tests.watchline.test_service import eventually
from watchline.config import load_config
from watchline.service import Watchline

SITE = (22.5431, 114.0579)
TRUCK, TRUCK_PHONE = "粤B9R001", "13811110001"
CAR, OWNER = "粤B12345", "13900139000"


def _config(tmp_path, **extra):
    return load_config(environ={
        "WATCHLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "WATCHLINE_INGEST_JT808": "",
        "WATCHLINE_INGEST_GT06": "", "WATCHLINE_SIP_LISTEN": "", **extra})


def _serve(config, role: str) -> Watchline:
    app = Watchline(config, reactor, role=role)
    upgrade(app.db.engine)
    rows, errors = validate(iter([
        (2, {"plate": TRUCK, "terminal_id": TRUCK_PHONE, "protocol": "jt808", "owner_name": "Rescue Co",
             "owner_phone": "13800138000", "tier": "normal", "pin": "1234", "kind": "rescue", "skills": "tow"}),
        (3, {"plate": CAR, "terminal_id": "13822220002", "protocol": "jt808", "owner_name": "Li Na",
             "owner_phone": OWNER, "tier": "gold", "pin": "4321"}),
    ]), "CN")
    assert not errors
    app.db.vehicles.import_rows_blocking(rows)
    return app


@pytest.fixture(params=["sms", "no channel"])
def system(request, tmp_path):
    smsc, port, extra = Smsc(), None, {}
    if request.param == "sms":
        port = reactor.listenTCP(0, smsc, interface="127.0.0.1")
        extra["WATCHLINE_NOTIFY_SMPP_URL"] = f"smpp://watchline:s3cret@127.0.0.1:{port.getHost().port}"
    api_port = free_port()
    app = _serve(_config(tmp_path, WATCHLINE_API_LISTEN=f"tcp:{api_port}:interface=127.0.0.1", **extra), "api")
    token = app.db.users.issue_token_blocking("dispatcher", "disp-1")
    app.startService()
    try:
        yield app, f"http://127.0.0.1:{api_port}/api/v1", token, smsc if port else None
    finally:
        pytest_twisted.blockon(defer.maybeDeferred(app.stopService))
        if port is not None:
            pytest_twisted.blockon(defer.maybeDeferred(port.stopListening))


@pytest_twisted.ensureDeferred
async def test_a_dispatched_truck_is_texted_to_the_owner_and_noted_on_the_incident(system):
    app, base, token, smsc = system
    now = datetime.fromtimestamp(reactor.seconds(), timezone.utc)
    await app.ingest.submit([Report("jt808", TRUCK_PHONE, now, Fix(22.5531, 114.0579, valid=True))])  # ~1.1 km
    await eventually(lambda: defer.succeed(app.fleet.nearest(*SITE)))
    incident, _ = await app.db.incidents.open_or_join(NewIncident(
        plate=CAR, alarm="collision", severity="emergency", priority=0, tier="gold",
        policy={"name": "agent_only", "steps": []}, time=now, lat=SITE[0], lon=SITE[1]), now)

    code, order = await call("POST", f"{base}/dispatch/work_orders", token, {"incident_id": incident.id})
    assert code == 201 and order["truck_plate"] == TRUCK, order
    minutes = max(1, round(order["eta_s"] / 60))
    await app.dispatch.notices_sent()  # the notice goes out after the order is answered
    [notice] = [e for e in (await app.db.incidents.get(incident.id)).timeline if e.kind == "message"]
    assert TRUCK in notice.text and f"预计{minutes}分钟内到达" in notice.text and "+861390013****" in notice.text
    assert notice.data["work_order_id"] == order["id"]
    deliveries = await app.db.deliveries.search(work_order_id=order["id"])
    if smsc is None:  # nothing configured: the text is there, marked as not sent
        assert "— SMS not sent (no SMS channel): 【Watchline】救援车" in notice.text
        assert notice.data["sent"] is False and deliveries == []
        return
    assert {p.params["destination_addr"] for _, p in smsc.submitted} == {b"8613900139000"}
    text = decode_parts([p.params["short_message"] for _, p in smsc.submitted], ucs2=True)  # as the phone shows it
    assert TRUCK in text and f"预计{minutes}分钟内到达" in text and f"工单号{order['id']}" in text
    assert notice.text.endswith(f"— sms sent: {text}") and notice.data["sent"] is True
    assert [(d.channel, d.status, d.id) for d in deliveries] == [("sms", "sent", notice.data["delivery_ids"][0])]


def test_only_a_process_serving_the_api_tells_customers(tmp_path):
    """Wiring only (nothing started): orders are created through the API, so a worker binds no SMSC session."""
    sms = {"WATCHLINE_NOTIFY_SMPP_URL": "smpp://watchline:pw@127.0.0.1:2775"}
    api = Watchline(_config(tmp_path, WATCHLINE_API_LISTEN=f"tcp:{free_port()}:interface=127.0.0.1", **sms),
                    reactor, role="api")
    assert isinstance(api.dispatch.notices, Notices) and api.dispatch.notices is api.notices()
    assert api.dispatch.notices.channels.names == ["sms"] and api.dispatch.notices.desk is api.desk
    worker = Watchline(_config(tmp_path, WATCHLINE_API_LISTEN="", **sms), reactor, role="worker")
    assert isinstance(worker.dispatch.notices, TimelineNotices) and getattr(worker, "_notices", None) is None
