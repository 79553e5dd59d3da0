"""A split deployment verifies an owner: ``watchline serve --role worker`` opens the routine incident,
``--role telephony`` phones the owner (sipp keys the PIN), over RabbitMQ and PostgreSQL only."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from alarms.report import Fix, Report
from ingest.pipeline import IngestPipeline
from tests.crm.storage_contract import rows
from tests.integration.processes import AMQP_URL, Deployment, consumers
from tests.integration.sipp.harness import render_scenario, require_sipp, run_sipp, sipp_argv
from watchline.mq.amqp import AmqpBus

pytestmark = pytest.mark.integration

SIP = 36100  # Watchline's telephony process; sipp on SIP + 1 (media + 2); RTP 48600-48698


@pytest_twisted.ensureDeferred
async def test_worker_asks_and_the_telephony_process_verifies_the_owner(pg_url, tmp_path):
    require_sipp()
    deployment = Deployment(
        pg_url, tmp_path, rows({"plate": "S001", "terminal_id": "600000000001", "pin": "2468"}), "split",
        WATCHLINE_SIP_LISTEN=f"udp:{SIP}:interface=127.0.0.1", WATCHLINE_SIP_TRUNK=f"127.0.0.1:{SIP + 1}",
        WATCHLINE_SIP_RTP_PORTS="48600-48698", WATCHLINE_SIP_RECORDINGS=str(tmp_path / "rec"),
        WATCHLINE_SIP_PROMPT_CACHE=str(tmp_path / "prompts"), WATCHLINE_NOTIFY_QUIET_HOURS="")
    db, run, exchange = deployment.db, deployment.run, deployment.exchange
    for role in ("worker", "telephony"):
        deployment.start(role, role)
    bus = AmqpBus.from_url(AMQP_URL, reactor, exchange=exchange, connection_name="wltest-split")
    try:
        await bus.startService()
        await bus.wait_connected(30)
        for _ in range(300):  # the worker on the alarms queue, the telephony process on policies (bounded: 60 s)
            if await consumers(bus, f"{exchange}.alarms") == 1 and await consumers(bus, f"{exchange}.policies") == 1:
                break
            assert deployment.running(), deployment.logs()
            await task.deferLater(reactor, 0.2, lambda: None)
        assert await consumers(bus, f"{exchange}.policies") == 1, deployment.logs()
        scenario = render_scenario("uas_owner_pin.xml", tmp_path, owner_digits="2468#")
        sipp = run_sipp(reactor, sipp_argv(scenario, SIP + 1, SIP + 2, tmp_path, timeout=60), 60)
        await IngestPipeline(db.vehicles, bus, reactor).submit([Report(
            "jt808", "600000000001", datetime.now(timezone.utc).replace(microsecond=0), Fix(31.0, 121.0, valid=True),
            alarms=("illegal_movement",), raw_alarms={"jt808_word": 1 << 28}, report_id=f"{run}-1")])
        incident = None
        for _ in range(600):  # bounded: 60 s
            found = await db.incidents.search(plate="S001")
            if found and found[0].state in ("resolved", "escalated"):
                incident = await db.incidents.get(found[0].id)
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        assert incident is not None, deployment.logs()
        assert (incident.state, incident.outcome) == ("resolved", "owner_handled"), (incident.timeline, deployment.logs())
        (call,) = [e for e in incident.timeline if e.kind == "call"]
        assert call.data["outcome"] == "verified"
        assert (await sipp).exit_code == 0
    finally:
        await deployment.stop(bus)
