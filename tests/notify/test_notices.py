"""Notices: the dispatch hook and friends route rendered messages to channels and record deliveries."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest_twisted
from twisted.internet import reactor

from alarms.desk import IncidentDesk
from crm.db import Database
from crm.incidents import NewIncident
from crm.migrate import upgrade
from crm.schema import work_orders
from notify.channels import Channels, DeliveryFailed, SendResult, channels_from_config
from notify.channels.rendering import NoticeRenderer
from notify.notices import Notices, e164
from tests.crm.storage_contract import rows
from watchline.config import NotifyConfig
from watchline.mq.fake import FakeBus

T0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)


class RecordingChannel:
    """A channel with the real interface (name, async send) that keeps what it was given."""

    def __init__(self, name, fail_for=(), urls=()):
        self.name, self.fail_for, self.urls, self.sent = name, set(fail_for), tuple(urls), []

    async def send(self, message):
        self.sent.append(message)
        if message.recipient in self.fail_for:
            raise DeliveryFailed("HTTP 410 Gone")
        return SendResult(f"{self.name}-{len(self.sent)}")


@pytest_twisted.async_yield_fixture
async def rig(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    try:
        await db.vehicles.import_rows(rows({"plate": "京A12345", "terminal_id": "11"},
                                           {"plate": "京B999", "terminal_id": "12"}), "test")
        incident, _ = await db.incidents.open_or_join(NewIncident(
            "京A12345", "collision", "emergency", 0, "normal", {"name": "agent_only", "steps": []}, T0), T0)
        truck = (await db.vehicles.get_by_plate("京B999")).id

        def insert(conn):
            return conn.execute(work_orders.insert().values(
                kind="tow", status="dispatched", incident_id=incident.id, truck_id=truck, customer_plate="京A12345",
                contact_phone="13800138000", site_lat=39.9, site_lon=116.4, address="建国路88号", eta_s=1290.0,
                created_by="alice", created_at=T0, updated_at=T0).returning(work_orders.c.id)).scalar_one()

        order_id = await db.pool.do(insert)
        order = SimpleNamespace(id=order_id, incident_id=incident.id, customer_plate="京A12345", address="建国路88号")
        yield SimpleNamespace(db=db, order=order, incident=incident, desk=IncidentDesk(db, FakeBus(), reactor))
    finally:
        await db.stopService()


def notices(rig, *channels, desk=True):
    registry = Channels(rig.db.deliveries, reactor)
    for channel in channels:
        registry.register(channel)
    return Notices(registry, NoticeRenderer(hotline="400-800-1234"), rig.db.vehicles, "CN",
                   desk=rig.desk if desk else None)


@pytest_twisted.ensureDeferred
async def test_work_order_dispatched_texts_the_customer_posts_webhooks_and_notes_the_incident(rig):
    sms = RecordingChannel("sms")
    hooks = RecordingChannel("webhook", fail_for={"https://b.example/h"},
                             urls=["https://a.example/h", "https://b.example/h"])
    sent = await notices(rig, sms, hooks).work_order_dispatched(rig.order, "京B999", 1290.0, "138 0013 8000")
    assert [(d.channel, d.status, d.recipient) for d in sent] == [
        ("sms", "sent", "+8613800138000"), ("webhook", "sent", "https://a.example/h"),
        ("webhook", "failed", "https://b.example/h")]
    [text] = sms.sent
    assert "救援车京B999已出发前往建国路88号，预计22分钟内到达（您的车辆京A12345）" in text.body
    assert f"工单号{rig.order.id}" in text.body and "400-800-1234" in text.body
    assert hooks.sent[0].data["eta_s"] == 1290.0 and hooks.sent[0].data["truck_plate"] == "京B999"
    recorded = await rig.db.deliveries.search(work_order_id=rig.order.id)
    assert [d.id for d in recorded] == [d.id for d in sent] and recorded[2].error == "HTTP 410 Gone"
    assert {d.incident_id for d in recorded} == {rig.incident.id}
    timeline = (await rig.db.incidents.get(rig.incident.id)).timeline
    assert timeline[-1].kind == "message"
    assert timeline[-1].text == (f"work order {rig.order.id}: notice to the customer +861380013**** — sms sent, "
                                 f"webhook sent, webhook failed (HTTP 410 Gone): {text.body}")
    assert timeline[-1].data["delivery_ids"] == [d.id for d in sent] and timeline[-1].data["sent"] is True


@pytest_twisted.ensureDeferred
async def test_without_sms_the_customer_is_not_texted_and_nothing_fails(rig):
    sent = await notices(rig, desk=False).work_order_dispatched(rig.order, "京B999", None, "13800138000")
    assert sent == [] and await rig.db.deliveries.search() == []


@pytest_twisted.ensureDeferred
async def test_a_number_that_does_not_parse_is_refused_by_the_channel_and_recorded(rig):
    from notify.channels.sms import SmsChannel

    sms = SmsChannel(reactor, "smpp://u:p@127.0.0.1:1")  # never started: the number is refused first
    [d] = await notices(rig, sms, desk=False).work_order_dispatched(rig.order, "京B999", 60.0, "call me")
    assert (d.status, d.error) == ("failed", "not a phone number: 'call me'")


@pytest_twisted.ensureDeferred
async def test_campaign_notice_by_sms(rig):
    sms = RecordingChannel("sms")
    d = await notices(rig, sms).campaign_notice("年检提醒", "您的车辆本月需要年检。", "+8613900139000")
    assert (d.status, d.template, sms.sent[0].body) == (
        "sent", "campaign_notice", "【Watchline】您的车辆本月需要年检。 咨询请致电400-800-1234。")
    assert await notices(rig).campaign_notice("x", "y", "+8613900139000") is None  # SMS off


def test_e164():
    assert e164("13800138000") == "+8613800138000"
    assert e164("+44 20 7946 0958") == "+442079460958"
    assert e164("12") is None and e164("call me") is None


def test_registry_from_config():
    assert channels_from_config(NotifyConfig(), reactor, None).names == []
    full = channels_from_config(NotifyConfig(
        smpp_url="smpp://u:p@127.0.0.1:2775", smpp_source="10690000", smtp_host="127.0.0.1",
        webhook_urls=["https://x.example/h"], webhook_retries=5), reactor, None, telephony=object(), lines=object())
    assert full.names == ["email", "sms", "voice", "webhook"]
    assert full["webhook"].retries == 5 and full["webhook"].urls == ("https://x.example/h",)
    assert full["sms"].source == "10690000" and full["sms"].parent is full  # started and stopped with the registry


@pytest_twisted.ensureDeferred
async def test_the_owners_email_gets_a_copy_of_their_notices(rig):
    await rig.db.vehicles.import_rows(rows({"plate": "京A12345", "terminal_id": "11", "email": "zhang@example.cn"}),
                                      "test")
    sms, email = RecordingChannel("sms"), RecordingChannel("email")
    service = notices(rig, sms, email)
    sent = await service.work_order_dispatched(rig.order, "京B999", 1290.0, "13800138000")
    assert [(d.channel, d.recipient) for d in sent] == [("sms", "+8613800138000"), ("email", "zhang@example.cn")]
    assert email.sent[0].body == sms.sent[0].body and email.sent[0].work_order_id == rig.order.id
    timeline = (await rig.db.incidents.get(rig.incident.id)).timeline
    assert "sms sent, email sent:" in timeline[-1].text

    incident = await rig.db.incidents.get(rig.incident.id)
    delivery = await service.incident_notice(incident, "13800138000", "zh")
    await service.sent()  # the e-mail copy goes in the background: the SMS does not wait for it
    assert delivery.channel == "sms" and [m.recipient for m in email.sent] == ["zhang@example.cn"] * 2
    assert email.sent[1].incident_id == incident.id

    no_email = notices(rig, RecordingChannel("sms"))  # e-mail not configured: SMS only, as before
    assert [d.channel for d in await no_email.work_order_dispatched(rig.order, "京B999", 60.0, "13800138000")] == [
        "sms"]


@pytest_twisted.ensureDeferred
async def test_a_slow_mail_server_does_not_hold_up_the_quiet_hours_sms(rig):
    from twisted.internet.defer import Deferred

    await rig.db.vehicles.import_rows(rows({"plate": "京A12345", "terminal_id": "11", "email": "zhang@example.cn"}),
                                      "test")
    held = Deferred()

    class SlowMail(RecordingChannel):
        async def send(self, message):
            await held  # a mail server timing out and retrying
            return await super().send(message)

    mail = SlowMail("email")
    service = notices(rig, RecordingChannel("sms"), mail)
    incident = await rig.db.incidents.get(rig.incident.id)
    delivery = await service.incident_notice(incident, "13800138000", "zh")
    assert delivery.status == "sent" and mail.sent == []
    copies = service.sent()
    assert not copies.called
    held.callback(None)
    await copies
    assert [m.recipient for m in mail.sent] == ["zhang@example.cn"]
