"""The ``sms`` channel against an in-process SMSC over TCP: bind, submit_sm, UCS2 parts, receipts, reconnects."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
import pytest_twisted
from smpp.pdu import pdu_types as t
from twisted.internet import reactor, task

from crm.db import Database
from crm.migrate import upgrade
from notify.channels import Channels, Message
from notify.channels.rendering import NoticeRenderer
from notify.channels.sms import SmsChannel, parse_smpp_url
from notify.channels.sms_parts import code_text, decode_parts, parse_receipt
from tests.notify.smsc import Smsc


async def eventually(check, timeout: float = 5.0):
    for _ in range(int(timeout / 0.02)):
        result = await check()
        if result:
            return result
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not met in time")


@pytest_twisted.async_yield_fixture
async def rig(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    smsc = Smsc()
    port = reactor.listenTCP(0, smsc, interface="127.0.0.1")
    channels = Channels(db.deliveries, reactor)
    sms = channels.register(SmsChannel(
        reactor, f"smpp://watchline:s3cret@127.0.0.1:{port.getHost().port}", "Watchline",
        connect_timeout=2.0, reconnect_delay=0.05, retry_delay=0.05))
    channels.startService()
    try:
        yield SimpleNamespace(db=db, smsc=smsc, channels=channels, sms=sms, port=port)
    finally:
        await channels.stopService()
        await port.stopListening()
        await db.stopService()


def sms_to(body: str, number: str = "+8613800138000") -> Message:
    return Message(number, body, "incident_notice", incident_id=None)


@pytest_twisted.ensureDeferred
async def test_short_text_is_one_submit_sm_and_a_receipt_makes_it_delivered(rig):
    delivery = await rig.channels.send("sms", sms_to("Vehicle A123 low battery. Call 400-800-1234."))
    assert (delivery.status, delivery.attempts, delivery.external_id, delivery.channel) == ("sent", 1, "m1", "sms")
    assert rig.smsc.binds == ["bind_transceiver"]
    [(message_id, pdu)] = rig.smsc.submitted
    p = pdu.params
    assert (p["destination_addr"], p["dest_addr_ton"], p["dest_addr_npi"]) == (
        b"8613800138000", t.AddrTon.INTERNATIONAL, t.AddrNpi.ISDN)
    assert (p["source_addr"], p["source_addr_ton"]) == (b"Watchline", t.AddrTon.ALPHANUMERIC)
    assert p["data_coding"].schemeData == t.DataCodingDefault.SMSC_DEFAULT_ALPHABET
    assert p["short_message"] == b"Vehicle A123 low battery. Call 400-800-1234."
    assert p["registered_delivery"].receipt == t.RegisteredDeliveryReceipt.SMSC_DELIVERY_RECEIPT_REQUESTED
    assert t.EsmClassGsmFeatures.UDHI_INDICATOR_SET not in p["esm_class"].gsmFeatures

    rig.smsc.sessions[0].deliver_receipt("m1")

    async def delivered():
        return (await rig.db.deliveries.get(delivery.id)).status == "delivered"

    await eventually(delivered)
    assert rig.smsc.receipt_acks[0].status == t.CommandStatus.ESME_ROK


@pytest_twisted.ensureDeferred
async def test_long_chinese_notice_goes_as_ucs2_parts_and_is_delivered_when_every_part_is(rig):
    incident = SimpleNamespace(id=7, plate="京A12345", alarm="power_cut", lat=39.90420, lon=116.40740,
                               opened_at=datetime(2026, 5, 1, 15, 30, tzinfo=timezone.utc))
    message = NoticeRenderer(hotline="400-800-1234").incident_notice(incident, "+8613800138000", "zh")
    text = message.body + "请勿回复本短信。车辆安全中心全天候为您服务，感谢您的信任与支持。"
    assert len(text) > 134  # three UCS2 parts
    delivery = await rig.channels.send("sms", Message(message.recipient, text, message.template, incident_id=None))
    assert delivery.status == "sent"
    pdus = [pdu for _, pdu in rig.smsc.submitted]
    assert len(pdus) == 3
    refs = set()
    for seq, pdu in enumerate(pdus, start=1):
        p = pdu.params
        assert p["data_coding"].schemeData == t.DataCodingDefault.UCS2
        assert t.EsmClassGsmFeatures.UDHI_INDICATOR_SET in p["esm_class"].gsmFeatures
        sm = p["short_message"]
        assert len(sm) <= 140 and sm[:3] == b"\x05\x00\x03" and sm[4:6] == bytes((3, seq))
        refs.add(sm[3])
    assert len(refs) == 1
    assert b"".join(pdu.params["short_message"][6:] for pdu in pdus).decode("utf-16-be") == text
    assert delivery.external_id == "m1"

    session = rig.smsc.sessions[0]
    session.deliver_receipt("m1")
    session.deliver_receipt("m3")
    await eventually(lambda: _acks(rig, 2))
    assert (await rig.db.deliveries.get(delivery.id)).status == "sent"  # m2 still on its way
    session.deliver_receipt("m2")

    async def delivered():
        return (await rig.db.deliveries.get(delivery.id)).status == "delivered"

    await eventually(delivered)


async def _acks(rig, n):
    return len(rig.smsc.receipt_acks) >= n


@pytest_twisted.ensureDeferred
async def test_undeliverable_part_fails_the_delivery(rig):
    delivery = await rig.channels.send("sms", sms_to("短信" * 80))
    assert len(rig.smsc.submitted) == 3
    rig.smsc.sessions[0].deliver_receipt("m2", stat="UNDELIV", err="001")

    async def failed():
        d = await rig.db.deliveries.get(delivery.id)
        return d if d.status == "failed" else None

    assert (await eventually(failed)).error == "UNDELIV err:001"


@pytest_twisted.ensureDeferred
async def test_refused_number_fails_at_once_and_throttling_is_tried_again(rig):
    rig.smsc.refuse = [t.CommandStatus.ESME_RINVDSTADR]
    refused = await rig.channels.send("sms", sms_to("hello"))
    assert (refused.status, refused.attempts) == ("failed", 1)
    assert "ESME_RINVDSTADR" in refused.error
    rig.smsc.refuse = [t.CommandStatus.ESME_RTHROTTLED]
    throttled = await rig.channels.send("sms", sms_to("hello again"))
    assert (throttled.status, throttled.attempts, throttled.external_id) == ("sent", 2, "m1")


@pytest_twisted.ensureDeferred
async def test_reconnects_and_binds_again_after_the_smsc_drops_the_session(rig):
    rig.smsc.drop_after_submits = 1
    first = await rig.channels.send("sms", sms_to("one"))
    second = await rig.channels.send("sms", sms_to("two"))
    assert (first.status, second.status) == ("sent", "sent")
    assert rig.smsc.binds == ["bind_transceiver", "bind_transceiver"]
    assert [pdu.params["short_message"] for _, pdu in rig.smsc.submitted] == [b"one", b"two"]


@pytest_twisted.ensureDeferred
async def test_wrong_password_never_binds_and_the_send_fails(rig):
    rig.smsc.password = b"other"
    rig.sms.retries = 0
    await rig.sms.stopService()  # drop the session bound at start: the next bind is refused
    rig.sms.startService()
    failed = await rig.channels.send("sms", sms_to("hello"))
    assert failed.status == "failed" and "no SMPP session" in failed.error
    assert rig.smsc.submitted == []


@pytest_twisted.ensureDeferred
async def test_bad_number_is_refused_before_the_wire(rig):
    bad = await rig.channels.send("sms", sms_to("hi", number="owner@example.com"))
    assert (bad.status, bad.error) == ("failed", "not a phone number: 'owner@example.com'")


def test_coding_and_segmentation_rules():
    assert code_text("a" * 160, 1).parts == (b"a" * 160,)
    gsm = code_text("a" * 161, 1)
    assert not gsm.ucs2 and [len(p) for p in gsm.parts] == [6 + 153, 6 + 8]
    one = code_text("中" * 70, 9)
    assert one.ucs2 and one.parts == (("中" * 70).encode("utf-16-be"),)
    two = code_text("中" * 71, 9)
    assert [p[:6] for p in two.parts] == [b"\x05\x00\x03\x09\x02\x01", b"\x05\x00\x03\x09\x02\x02"]
    assert decode_parts(list(two.parts), True) == "中" * 71
    emoji = "中" * 66 + "😀" + "中" * 10  # the pair straddles the 67-unit boundary: it moves whole
    parts = code_text(emoji, 1).parts
    assert decode_parts(list(parts), True) == emoji and len(parts[0]) == 6 + 132
    assert code_text("{curly}", 1).ucs2  # GSM escape characters go as UCS2
    with pytest.raises(ValueError, match="at most 10"):
        code_text("中" * 67 * 11, 1)


def test_receipt_parsing():
    r = parse_receipt({"short_message": b"id:abc sub:001 dlvrd:001 submit date:2605012330 done date:2605012331 "
                                        b"stat:DELIVRD err:000 text:hi"})
    assert (r.message_id, r.status, r.error) == ("abc", "delivered", None)
    assert parse_receipt({"short_message": b"id:abc stat:ENROUTE err:000"}) is None
    r = parse_receipt({"receipted_message_id": b"x9", "message_state": t.MessageState.UNDELIVERABLE})
    assert (r.message_id, r.status) == ("x9", "failed")
    assert parse_receipt({"short_message": "你好".encode("utf-16-be")}) is None


def test_smpp_url():
    assert parse_smpp_url("smpp://user:p%40ss@smsc.example:2776") == ("smsc.example", 2776, "user", "p@ss")
    assert parse_smpp_url("smpp://user@10.0.0.1")[1] == 2775
    for bad in ("http://u:p@h", "smpp://h:2775", "smpp://u:p@h:99999"):
        with pytest.raises(ValueError):
            parse_smpp_url(bad)
