"""bus_from_url: the [mq] url setting picks the backend."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from watchline.mq import bus_from_url
from watchline.mq.amqp import AmqpBus
from watchline.mq.delivery import Redelivery
from watchline.mq.memory import MemoryBus


def test_memory_url_gives_the_in_process_bus_with_options() -> None:
    bus = bus_from_url("memory://", Clock(), redelivery=Redelivery(max_attempts=2))
    assert isinstance(bus, MemoryBus) and bus.redelivery.max_attempts == 2


def test_amqp_url_gives_the_rabbitmq_bus() -> None:
    bus = bus_from_url("amqp://wl:secret@mq.example:5673/prod?exchange=alarms", Clock(), heartbeat=5)
    assert isinstance(bus, AmqpBus)
    assert (bus.host, bus.port, bus.vhost, bus.exchange, bus.heartbeat) == ("mq.example", 5673, "prod", "alarms", 5)
    assert bus.dead_letter_queue == "alarms.dead"


@pytest.mark.parametrize("url", ["redis://localhost", "memory://somewhere", "amqps://h", "localhost:5672", "", None])
def test_other_urls_are_refused_clearly(url) -> None:
    with pytest.raises(ValueError, match="URL|amqps|memory"):
        bus_from_url(url, Clock())
