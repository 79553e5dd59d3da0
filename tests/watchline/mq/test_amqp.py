"""The RabbitMQ bus without a broker: URLs, reconnect scheduling, fail-fast produce.
(Against a real RabbitMQ: tests/integration/test_mq_rabbitmq.py.)"""

from __future__ import annotations

import random

import pytest
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from tests.watchline.mq.contract import drive
from watchline.mq.amqp import AmqpBus, Backoff, parse_amqp_url
from watchline.mq.base import BusUnavailable


@pytest.mark.parametrize("url, expected", [
    ("amqp://localhost", {"host": "localhost", "port": 5672, "username": "guest", "password": "guest",
                          "vhost": "/"}),
    ("amqp://u%40x:p%3Aw@10.0.0.5:5673/fleet", {"host": "10.0.0.5", "port": 5673, "username": "u@x",
                                                "password": "p:w", "vhost": "fleet"}),
    ("amqp://u:p@h/%2F?exchange=wl&heartbeat=10", {"host": "h", "port": 5672, "username": "u", "password": "p",
                                                   "vhost": "/", "exchange": "wl", "heartbeat": 10}),
])
def test_amqp_urls(url: str, expected: dict) -> None:
    assert parse_amqp_url(url) == expected


@pytest.mark.parametrize("url, error", [
    ("amqps://h", "not an amqp"), ("amqp://", "without a host"), ("amqp://h:notaport", "bad port"),
    ("amqp://h?color=red", "unknown amqp URL option"), ("amqp://h?heartbeat=soon", "bad value"),
])
def test_bad_amqp_urls(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_amqp_url(url)


def test_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=4, jitter=0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_jitter_stays_within_its_band() -> None:
    backoff = Backoff(initial=1, maximum=1, jitter=0.2, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.8 <= delay <= 1.2 for delay in delays)
    assert max(delays) - min(delays) > 0.2  # actually spread, not constant


def refuse_last_connection(reactor: MemoryReactorClock) -> None:
    host, port, factory, _timeout, _bind = reactor.tcpClients[-1]
    factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))


def test_unreachable_broker_fails_fast_and_is_retried_with_backoff() -> None:
    reactor = MemoryReactorClock()
    bus = AmqpBus(reactor, host="127.0.0.1", port=5999, backoff=Backoff(initial=1, maximum=4, jitter=0))
    started = bus.startService()
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [("127.0.0.1", 5999)]
    refuse_last_connection(reactor)
    assert drive(reactor, started) is False
    with pytest.raises(BusUnavailable, match="not connected"):
        drive(reactor, bus.produce("report.x", {"n": 1}))
    reactor.advance(0.99)
    assert len(reactor.tcpClients) == 1
    reactor.advance(0.01)
    assert len(reactor.tcpClients) == 2  # second attempt after 1 s
    refuse_last_connection(reactor)
    reactor.advance(1.99)
    assert len(reactor.tcpClients) == 2
    reactor.advance(0.01)
    assert len(reactor.tcpClients) == 3  # then after 2 s
    refuse_last_connection(reactor)
    drive(reactor, bus.stopService())
    reactor.advance(60)
    assert len(reactor.tcpClients) == 3  # a stopped bus stops retrying
    assert not reactor.getDelayedCalls()


def test_consumers_can_register_while_disconnected_and_bad_input_is_refused() -> None:
    reactor = MemoryReactorClock()
    bus = AmqpBus(reactor, backoff=Backoff(initial=1, jitter=0))
    bus.startService()
    consumer = drive(reactor, bus.start_consuming(lambda key, message: None, "report.#", queue="workers"))
    assert consumer.queue == "workers" and not bus.connected
    with pytest.raises(ValueError):
        drive(reactor, bus.start_consuming(lambda key, message: None, "report..x"))
    with pytest.raises(ValueError):
        drive(reactor, bus.produce("report.*", {"n": 1}))
    with pytest.raises(TypeError):
        drive(reactor, bus.produce("report.x", {"n": object()}))
    drive(reactor, consumer.stop_consuming())
    refuse_last_connection(reactor)
    drive(reactor, bus.stopService())
