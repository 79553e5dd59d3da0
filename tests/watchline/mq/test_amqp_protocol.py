"""Publisher confirms: the spec extension and the confirm bookkeeping."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from txamqp.client import Closed
from txamqp.connection import Body, Frame, Header, Method
from txamqp.content import Content

from watchline.mq.amqp_protocol import Client, Delegate, PublisherConfirms, load_spec
from watchline.mq.base import BusUnavailable


def test_spec_has_publisher_confirms() -> None:
    spec = load_spec()
    confirm = spec.classes.byname["confirm"]
    assert confirm.id == 85
    assert [(m.name, m.id) for m in confirm.methods] == [("select", 10), ("select-ok", 11)]
    nack = spec.classes.byname["basic"].methods.byname["nack"]
    assert nack.id == 120 and [f.name for f in nack.fields] == ["delivery-tag", "multiple", "requeue"]
    assert spec.classes.byname["basic"].methods.byname["ack"].id == 80  # the standard part is intact


class RecordingChannel:
    """Stands in for our txAMQP channel: records what is sent; ``closed`` makes sending fail."""

    def __init__(self) -> None:
        self.sent: list[tuple] = []
        self.closed = False

    def send(self, klass: str, method: str, *args, content=None) -> None:
        if self.closed:
            raise Closed("channel closed")
        self.sent.append((klass, method, args, content.body, content.properties))


def outcome(d: Deferred) -> list:
    seen: list = []
    d.addBoth(seen.append)
    return seen


def test_each_publication_resolves_on_its_ack_and_fails_on_nack() -> None:
    channel = RecordingChannel()
    confirms = PublisherConfirms(channel, Clock(), timeout=5)
    results = [outcome(confirms.publish("wl", f"k.{n}", b"{}")) for n in range(5)]
    assert channel.sent[0] == ("basic", "publish", (0, b"wl", b"k.0", False, False), b"{}",
                               {"delivery-mode": 2, "content-type": "application/json"})
    confirms.confirmed(2, multiple=False, accepted=True)
    assert [bool(r) for r in results] == [False, True, False, False, False]
    confirms.confirmed(3, multiple=True, accepted=True)  # acks 1 and 3 (2 already done)
    assert results[0] == [None] and results[2] == [None] and not results[3]
    confirms.confirmed(5, multiple=True, accepted=False)
    for nacked in results[3:]:
        assert nacked[0].check(BusUnavailable)
    assert confirms.in_flight == 0


def test_unconfirmed_publications_time_out() -> None:
    clock = Clock()
    confirms = PublisherConfirms(RecordingChannel(), clock, timeout=5)
    early = outcome(confirms.publish("wl", "a", b"{}"))
    clock.advance(3)
    late = outcome(confirms.publish("wl", "b", b"{}"))
    clock.advance(2)
    assert early[0].check(BusUnavailable) and not late
    confirms.confirmed(2, multiple=False, accepted=True)
    assert late == [None]
    confirms.confirmed(1, multiple=False, accepted=True)  # a late ack for a timed-out tag is ignored
    assert not clock.getDelayedCalls()


def test_a_lost_channel_fails_pending_and_later_publications() -> None:
    channel = RecordingChannel()
    confirms = PublisherConfirms(channel, Clock(), timeout=5)
    pending = outcome(confirms.publish("wl", "a", b"{}"))
    confirms.fail_all("connection lost")
    assert pending[0].check(BusUnavailable)
    with pytest.raises(BusUnavailable):
        confirms.publish("wl", "b", b"{}")


def test_a_closed_channel_uses_no_confirm_tag() -> None:
    channel = RecordingChannel()
    confirms = PublisherConfirms(channel, Clock(), timeout=5)
    channel.closed = True
    with pytest.raises(BusUnavailable):
        confirms.publish("wl", "a", b"{}")
    channel.closed = False
    sent = outcome(confirms.publish("wl", "b", b"{}"))
    confirms.confirmed(1, multiple=False, accepted=True)  # the broker numbers this one 1
    assert sent == [None]


class RecordingLink:
    def __init__(self) -> None:
        self.deliveries: list = []
        self.confirms: list = []

    def delivered(self, channel, msg) -> None:
        self.deliveries.append((channel.id, msg.consumer_tag, msg.delivery_tag, msg.routing_key, msg.content))

    def confirmed(self, channel, tag: int, multiple: bool, accepted: bool) -> None:
        self.confirms.append((channel.id, tag, multiple, accepted))


def connected_client(heartbeat: int = 0) -> tuple[Client, RecordingLink, StringTransport, Clock]:
    clock = Clock()
    link = RecordingLink()
    client = Client(Delegate(link, "test"), vhost="/", spec=load_spec(), heartbeat=heartbeat, clock=clock)
    client.link = link
    transport = StringTransport()
    client.makeConnection(transport)
    return client, link, transport, clock


def frames(client: Client, *frames: Frame) -> bytes:
    return b"".join(client._pack_frame(frame) for frame in frames)


def test_a_delivery_split_across_frames_and_reads_reaches_the_link_whole() -> None:
    client, link, _transport, _clock = connected_client()
    spec = client.spec
    deliver = spec.classes.byname["basic"].methods.byname["deliver"]
    ack = spec.classes.byname["basic"].methods.byname["ack"]
    body = '{"plate":"粤B12345","n":1}'.encode()
    data = frames(
        client,
        Frame(3, Method(deliver, "ctag", 7, False, "wl", "report.x")),
        Frame(3, Header(deliver.klass, 0, len(body), **{"content-type": "application/json", "delivery-mode": 2})),
        Frame(3, Body(body[:5])),
        Frame(3, Body(body[5:])),
        Frame(1, Method(ack, 12, True)),
    )
    for start in range(0, len(data), 7):  # arbitrary TCP segmentation
        client.dataReceived(data[start:start + 7])
    assert len(link.deliveries) == 1
    channel_id, tag, delivery_tag, routing_key, content = link.deliveries[0]
    assert (channel_id, tag, delivery_tag, routing_key) == (3, "ctag", 7, "report.x")
    assert content.body == body and content.properties["delivery-mode"] == 2
    assert link.confirms == [(1, 12, True, True)]


def test_send_writes_frames_the_broker_can_parse() -> None:
    client, _link, transport, _clock = connected_client()
    channel = client.channelFactory(5, client.outgoing, client)
    client.channels[5] = channel
    transport.clear()
    channel.send("basic", "publish", 0, b"wl", "report.粤B1".encode(), False, False,
                 content=Content(b'{"a":1}', properties={"delivery-mode": 2}))
    written = transport.value()
    parsed = []
    while written:
        length = int.from_bytes(written[3:7], "big")
        parsed.append(client._unpack_frame(written[:8 + length]))
        written = written[8 + length:]
    method, header, body = (frame.payload for frame in parsed)
    assert [frame.channel for frame in parsed] == [5, 5, 5]
    assert method.method.name == "publish" and method.args[1:3] == ("wl", "report.粤B1")
    assert header.size == 7 and header.properties == {"delivery-mode": 2}
    assert body.content in (b'{"a":1}', '{"a":1}')
    channel.close(None)
    with pytest.raises(Closed):
        channel.send("basic", "ack", 1, False)


def test_a_silent_broker_is_dropped_after_three_heartbeat_intervals() -> None:
    client, _link, transport, clock = connected_client(heartbeat=10)
    heartbeat = b"\x08\x00\x00\x00\x00\x00\x00\xce"
    clock.advance(20)
    client.dataReceived(heartbeat)  # heard from the broker at t=20
    clock.advance(10)  # t=30: the first check finds it was not silent for 30 s
    assert not transport.disconnecting
    clock.advance(19)  # t=49
    assert not transport.disconnecting
    clock.advance(1)  # t=50: 30 s of silence
    assert transport.disconnecting
