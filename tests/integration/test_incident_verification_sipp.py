"""The whole service verifies a routine alarm with the owner over a real call: a JT/T 808 terminal raises
the alarm over TCP, the alarm engine opens the incident, the policy dials sipp (as the owner's and the
backup contact's phones) through the trunk, the owner keys DTMF, and the incident ends where it should —
every call on its timeline.

The rules file gives routine alarms a fast policy (pauses of a second, the same shape as the default):
owner with busy and no answer retried once, then the backup contact the same way, then the agents.
"""

from __future__ import annotations

import json
import struct
from datetime import datetime, timezone

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor

from crm.fleet import validate
from crm.migrate import upgrade
from ingest.jt808 import messages as m
from ingest.jt808.terminal import TerminalIdentity, location_body
from tests.conftest import free_port
from tests.integration.sipp.harness import render_scenario, require_sipp, run_sipp, sipp_argv
from tests.watchline.test_service import Terminal, eventually, register_and_authenticate
from watchline.config import load_config
from watchline.service import Watchline

pytestmark = pytest.mark.integration

BASE = 36000  # this file's port block: Watchline SIP on BASE + 10k, sipp on +1 (media +2); RTP 48000 + 100k
ILLEGAL_MOVEMENT = 1 << 28  # routine by default, and confirmable by 0x8203
RULES = """
[policy.fast]
[[policy.fast.step]]
kind = "dial_owner"
timeout = 90
retry_after = 1
retry = {busy = {times = 1, after = 1}, no_answer = {times = 1, after = 1}}
[[policy.fast.step]]
kind = "dial_backup"
timeout = 90
retry_after = 1
retry = {busy = {times = 1, after = 1}, no_answer = {times = 1, after = 1}}

[[rule]]
alarms = ["*"]
severity = "routine"
policy = "fast"
"""


class ConfirmingTerminal(Terminal):
    """A terminal that answers the platform's 0x8203 with a 0x0001 "success", as real ones do."""

    def __init__(self, ident: TerminalIdentity) -> None:
        super().__init__()
        self.ident = ident
        self.confirmations: list[int] = []

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        before = len(self.replies)
        super().dataReceived(data)
        for packet in self.replies[before:]:
            if packet.header.msg_id == m.ALARM_CONFIRMATION:
                self.confirmations.append(struct.unpack(">HI", packet.body[:6])[1])
                self.transport.write(self.ident.packet(m.TERMINAL_RESPONSE, struct.pack(
                    ">HHB", packet.header.serial, m.ALARM_CONFIRMATION, 0)))


@pytest.fixture
def watchline_with_trunk(tmp_path, request):
    """The whole service (sqlite, in-memory bus) with its SIP trunk at sipp; one owner with a backup."""
    k = request.param
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    api_port, jt808_port, sip = free_port(), free_port(), BASE + 10 * k
    config = load_config(environ={
        "WATCHLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
        "WATCHLINE_API_LISTEN": f"tcp:{api_port}:interface=127.0.0.1",
        "WATCHLINE_INGEST_JT808": f"tcp:{jt808_port}:interface=127.0.0.1", "WATCHLINE_INGEST_GT06": "",
        "WATCHLINE_SIP_LISTEN": f"udp:{sip}:interface=127.0.0.1", "WATCHLINE_SIP_TRUNK": f"127.0.0.1:{sip + 1}",
        "WATCHLINE_SIP_RTP_PORTS": f"{48000 + 100 * k}-{48098 + 100 * k}",
        "WATCHLINE_SIP_RECORDINGS": str(tmp_path / "rec"), "WATCHLINE_SIP_PROMPT_CACHE": str(tmp_path / "prompts"),
        "WATCHLINE_SIP_RING_TIMEOUT": "2", "WATCHLINE_NOTIFY_QUIET_HOURS": "",
        "WATCHLINE_ALARMS_RULES": str(rules)})
    app = Watchline(config, reactor)
    upgrade(app.db.engine)
    owner, backup = OWNERS[k]
    rows, errors = validate(iter([(2, {
        "plate": "粤B7777", "terminal_id": "013912345678", "protocol": "jt808", "owner_name": "Li Wei",
        "owner_phone": owner, "backup_phone": backup, "tier": "normal", "pin": "2468"})]), "CN")
    assert not errors, errors
    app.db.vehicles.import_rows_blocking(rows)
    token = app.db.users.issue_token_blocking("agent", "agent-1")
    app.startService()
    try:
        yield app, f"http://127.0.0.1:{api_port}", jt808_port, token, sip + 1, tmp_path
    finally:
        pytest_twisted.blockon(defer.maybeDeferred(app.stopService))


# Per test (k): the owner's and backup contact's numbers. uas_campaign.xml keys on the last digit:
# 6 busy, 8 rings unanswered, 9 404.
OWNERS = {0: ("13800138000", "13900139000"), 1: ("13800138000", "13900139000"), 2: ("13800138000", "13900139000"),
          3: ("13800138006", "13900139008"), 4: ("13800138009", "13900139006")}


async def raise_alarm(jt808_port: int) -> ConfirmingTerminal:
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    ident = TerminalIdentity("013912345678")
    term = ConfirmingTerminal(ident)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", jt808_port), term)
    seen = await register_and_authenticate(term, ident, 0)
    term.transport.write(ident.packet(m.LOCATION, location_body(
        lat=22.54, lon=114.05, time=datetime.now(timezone.utc).replace(microsecond=0), alarm=ILLEGAL_MOVEMENT)))
    await term.replies_count(seen + 1)
    return term


async def settled(base: str, token: str, states: tuple[str, ...], timeout: float) -> dict:
    """The car's incident once it is in one of ``states``; on timeout, what it was doing meanwhile."""
    last: list = []

    async def check():
        resp = await treq.get(f"{base}/api/v1/incidents?plate=%E7%B2%A4B7777".encode(),
                              headers={"Authorization": f"Bearer {token}"})
        items = json.loads(await resp.content())["incidents"]
        last[:] = items
        return items[0] if items and items[0]["state"] in states else None

    try:
        return await eventually(check, timeout)
    except AssertionError:
        raise AssertionError(f"no incident reached {states}: {[(i['state'], timeline(i)) for i in last]}") from None


async def alarm_against(system, scenario, calls: int = 1):
    """sipp answering with ``scenario``, one alarm raised over JT/T 808: (incident once settled, sipp's
    result, the terminal)."""
    require_sipp()
    app, base, jt808_port, token, sipp_port, tmp_path = system
    sipp = run_sipp(reactor, sipp_argv(scenario, sipp_port, sipp_port + 1, tmp_path, calls=calls, timeout=60), 60)
    term = await raise_alarm(jt808_port)
    incident = await settled(base, token, ("resolved", "escalated"), 60)
    return incident, await sipp, term


def timeline(incident: dict) -> list[tuple[str, str]]:
    return [(e["kind"], e["text"]) for e in incident["timeline"]]


@pytest.mark.parametrize("watchline_with_trunk", [0], indirect=True)
@pytest_twisted.ensureDeferred
async def test_the_right_pin_resolves_owner_handled_and_confirms_on_the_terminal(watchline_with_trunk):
    app, base, _, token, _, tmp_path = watchline_with_trunk
    scenario = render_scenario("uas_owner_pin.xml", tmp_path, owner_digits="2468#")
    incident, sipp, term = await alarm_against(watchline_with_trunk, scenario)
    assert sipp.exit_code == 0, str(sipp)
    assert (incident["state"], incident["outcome"]) == ("resolved", "owner_handled"), timeline(incident)
    calls = [e for e in incident["timeline"] if e["kind"] == "call"]
    assert len(calls) == 1 and calls[0]["data"]["outcome"] == "verified" and calls[0]["data"]["recording"]
    record = await app.db.calls.get(calls[0]["data"]["call_id"])
    assert record is not None and record.recording_path == calls[0]["data"]["recording"]

    async def confirmed():
        resp = await treq.get(f"{base}/api/v1/incidents/{incident['id']}".encode(),
                              headers={"Authorization": f"Bearer {token}"})
        body = json.loads(await resp.content())
        return [e for e in body["timeline"] if e["kind"] == "terminal_feedback"]

    (feedback,) = await eventually(confirmed, 10)
    assert "terminal confirmed the alarm" in feedback["text"] and term.confirmations == [ILLEGAL_MOVEMENT]
    term.transport.loseConnection()


@pytest.mark.parametrize("watchline_with_trunk", [1], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_wrong_pin_three_times_escalates(watchline_with_trunk):
    scenario = render_scenario("uas_owner_pin_thrice.xml", watchline_with_trunk[-1], first_digits="1111#",
                               second_digits="2222#", third_digits="3333#")
    incident, sipp, term = await alarm_against(watchline_with_trunk, scenario)
    assert sipp.exit_code == 0, str(sipp)
    assert incident["state"] == "escalated" and incident["priority"] == 50, timeline(incident)
    assert timeline(incident)[-1] == ("escalate", "the owner failed the PIN three times")
    (call,) = [e for e in incident["timeline"] if e["kind"] == "call"]
    assert (call["data"]["outcome"], call["data"]["pin_attempts"]) == ("pin_failed", 3)
    term.transport.loseConnection()


@pytest.mark.parametrize("watchline_with_trunk", [2], indirect=True)
@pytest_twisted.ensureDeferred
async def test_nine_not_me_escalates_as_an_emergency(watchline_with_trunk):
    scenario = render_scenario("uas_owner_pin.xml", watchline_with_trunk[-1], owner_digits="9#")
    incident, sipp, term = await alarm_against(watchline_with_trunk, scenario)
    assert sipp.exit_code == 0, str(sipp)
    assert (incident["state"], incident["priority"]) == ("escalated", 0), timeline(incident)
    assert timeline(incident)[-1] == ("escalate", "the owner said it was not them or needs help")
    term.transport.loseConnection()


@pytest.mark.parametrize("watchline_with_trunk", [3], indirect=True)
@pytest_twisted.ensureDeferred
async def test_busy_owner_and_unanswered_backup_are_retried_then_go_to_the_agents(watchline_with_trunk):
    incident, result, term = await alarm_against(watchline_with_trunk, "uas_campaign.xml", calls=4)
    calls = [(e["data"]["step"], e["data"]["retry"], e["data"]["outcome"])
             for e in incident["timeline"] if e["kind"] == "call"]
    assert calls == [(1, 0, "busy"), (1, 1, "busy"), (2, 0, "no_answer"), (2, 1, "no_answer")], timeline(incident)
    assert incident["state"] == "escalated" and incident["priority"] == 50
    assert timeline(incident)[-1] == ("escalate", "nobody verified after 2 call steps")
    notes = [text for kind, text in timeline(incident) if kind == "notifying"]
    assert notes == ["step 1: calling the owner +861380013****", "step 1: calling the owner +861380013**** (retry 1)",
                     "step 2: calling the backup contact +861390013****",
                     "step 2: calling the backup contact +861390013**** (retry 1)"]
    assert result.exit_code == 0, str(result)  # sipp saw exactly these four calls
    term.transport.loseConnection()


@pytest.mark.parametrize("watchline_with_trunk", [4], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_number_that_is_not_found_is_not_retried_and_the_backup_is_called(watchline_with_trunk):
    incident, result, term = await alarm_against(watchline_with_trunk, "uas_campaign.xml", calls=3)
    calls = [(e["data"]["step"], e["data"]["outcome"]) for e in incident["timeline"] if e["kind"] == "call"]
    assert calls == [(1, "invalid_number"), (2, "busy"), (2, "busy")], timeline(incident)
    assert incident["state"] == "escalated"
    assert timeline(incident)[-1] == ("escalate", "nobody verified after 2 call steps")
    assert result.exit_code == 0, str(result)
    term.transport.loseConnection()
