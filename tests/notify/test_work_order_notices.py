"""The work-order notice always leaves the text and its fate on the incident: sent, failed, or not sent
and why — even in a process with no channel configured."""

from __future__ import annotations

from types import SimpleNamespace

import pytest_twisted
from twisted.internet import reactor

from notify.channels.sms import SmsChannel
from tests.notify.test_notices import RecordingChannel, notices, rig  # noqa: F401 - rig is a fixture

BODY = "【Watchline】救援车京B999已出发前往建国路88号，预计22分钟内到达（您的车辆京A12345）。"


async def last_entry(rig):  # noqa: F811
    return (await rig.db.incidents.get(rig.incident.id)).timeline[-1]


@pytest_twisted.ensureDeferred
async def test_no_channel_at_all_still_puts_the_text_on_the_timeline_as_not_sent(rig):  # noqa: F811
    assert await notices(rig).work_order_dispatched(rig.order, "京B999", 1290.0, "13800138000") == []
    entry = await last_entry(rig)
    assert entry.kind == "message" and entry.actor == "engine"
    assert entry.text.startswith(f"work order {rig.order.id}: notice to the customer +861380013**** — "
                                 f"SMS not sent (no SMS channel): {BODY}")
    assert entry.data == {"work_order_id": rig.order.id, "delivery_ids": [], "truck": "京B999", "eta_s": 1290.0,
                          "sent": False, "channels": []}
    assert await rig.db.deliveries.search() == []


@pytest_twisted.ensureDeferred
async def test_without_a_phone_the_webhooks_still_go_and_the_timeline_says_why_no_sms(rig):  # noqa: F811
    sms, hooks = RecordingChannel("sms"), RecordingChannel("webhook", urls=["https://a.example/h"])
    [hook] = await notices(rig, sms, hooks).work_order_dispatched(rig.order, "京B999", None, None)
    assert sms.sent == [] and hook.status == "sent"
    entry = await last_entry(rig)
    assert entry.text.startswith(f"work order {rig.order.id}: notice to the customer (no phone number) — "
                                 "SMS not sent (no phone number), webhook sent: 【Watchline】救援车京B999已出发")
    assert entry.data["sent"] is True and entry.data["delivery_ids"] == [hook.id]
    assert entry.data["channels"] == [["webhook", "sent"]]  # sent: the webhook, not the customer's phone


@pytest_twisted.ensureDeferred
async def test_a_refused_sms_is_on_the_timeline_as_failed_with_the_reason(rig):  # noqa: F811
    sms = SmsChannel(reactor, "smpp://u:p@127.0.0.1:1")  # never started: the number is refused first
    [d] = await notices(rig, sms).work_order_dispatched(rig.order, "京B999", 60.0, "call me")
    entry = await last_entry(rig)
    assert entry.text.startswith(f"work order {rig.order.id}: notice to the customer cal**** — "
                                 "sms failed (not a phone number: 'call me'): ")
    assert entry.data["sent"] is False and entry.data["delivery_ids"] == [d.id]
    assert entry.data["channels"] == [["sms", "failed"]]


@pytest_twisted.ensureDeferred
async def test_a_timeline_that_cannot_be_written_does_not_fail_the_notice(rig):  # noqa: F811
    class GoneDesk:
        async def attempt(self, *args, **kwargs):
            raise LookupError("no incident")

    hub = notices(rig, RecordingChannel("sms"))
    hub.desk = GoneDesk()
    [d] = await hub.work_order_dispatched(rig.order, "京B999", 60.0, "13800138000")
    assert d.status == "sent"


@pytest_twisted.ensureDeferred
async def test_an_order_without_an_incident_has_no_timeline_to_write(rig):  # noqa: F811
    order = SimpleNamespace(id=rig.order.id, incident_id=None, customer_plate=None, address=None)
    before = len((await rig.db.incidents.get(rig.incident.id)).timeline)
    assert await notices(rig).work_order_dispatched(order, "京B999", 60.0, "13800138000") == []
    assert len((await rig.db.incidents.get(rig.incident.id)).timeline) == before
