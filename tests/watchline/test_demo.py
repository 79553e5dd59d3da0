"""``watchline demo`` end to end in one process: the demo fleet raises alarms over JT/T 808 and GT06,
routine ones are phoned over real SIP/RTP to the demo owners' phones (PIN by RFC 4733 DTMF), and the
demo agents take and resolve what reaches the queue."""

from __future__ import annotations

import shutil

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from crm.migrate import upgrade
from tests.conftest import free_port
from watchline.config import load_config
from watchline.demo import DemoAgents, demo_config, start_demo
from watchline.service import Watchline

pytestmark = pytest.mark.skipif(not (shutil.which("sox") and shutil.which("espeak-ng")),
                                reason="the verification call speaks with espeak-ng and sox")


@pytest_twisted.ensureDeferred
async def test_the_demo_phones_owners_and_its_agents_resolve_the_queue(tmp_path, monkeypatch):
    monkeypatch.setattr(DemoAgents, "INTERVAL", 0.5)
    monkeypatch.setattr(DemoAgents, "HANDLING", 0.5)
    config, phones = demo_config(load_config(environ={
        "WATCHLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
        "WATCHLINE_API_LISTEN": f"tcp:{free_port()}:interface=127.0.0.1",
        "WATCHLINE_INGEST_JT808": f"tcp:{free_port()}:interface=127.0.0.1",
        "WATCHLINE_INGEST_GT06": f"tcp:{free_port()}:interface=127.0.0.1",
        "WATCHLINE_SIP_LISTEN": f"udp:{free_port()}:interface=127.0.0.1",
        "WATCHLINE_SIP_RECORDINGS": str(tmp_path / "rec"), "WATCHLINE_SIP_PROMPT_CACHE": str(tmp_path / "prompts")}))
    assert phones and config.sip.trunk == phones and config.notify.quiet_hours == ""
    app = Watchline(config, reactor)
    upgrade(app.db.engine)
    app.startService()
    demo = None
    try:
        demo = await start_demo(app, reactor, phones, duration=15)
        verified = by_agent = []
        for _ in range(600):  # bounded: 60 s
            resolved = await app.db.incidents.search(state="resolved", limit=200)
            verified = [i for i in resolved if i.outcome == "owner_handled"]
            by_agent = [i for i in resolved if (i.assignee or "").startswith("demo-agent")]
            if verified and by_agent:
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        assert verified, "no routine alarm was verified by a demo owner's PIN"
        assert by_agent, "the demo agents resolved nothing"
        incident = await app.db.incidents.get(verified[0].id)
        (call,) = [e for e in incident.timeline if e.kind == "call"]
        assert call.data["outcome"] == "verified" and call.data["recording"]
    finally:
        if demo is not None:
            await demo.stop()
        await defer.maybeDeferred(app.stopService)
