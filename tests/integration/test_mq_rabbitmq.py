"""The bus contract on a real RabbitMQ at 127.0.0.1:5672 (guest/guest), plus reconnection.

Every test uses its own exchange ``wltest.<run id>`` (so its own queues and dead-letter queue) and
deletes them afterwards. Fails when RabbitMQ is missing and CI=true; skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from txamqp.content import Content

from tests.conftest import require_service
from tests.watchline.mq import contract
from watchline.mq import bus_from_url
from watchline.mq.amqp import AmqpBus, Backoff
from watchline.mq.base import BusUnavailable
from watchline.mq.delivery import Redelivery

pytestmark = pytest.mark.integration

HOST, PORT = "127.0.0.1", 5672
MAX_ATTEMPTS = 3


def require_rabbitmq() -> None:
    require_service("RabbitMQ", HOST, PORT)


class RabbitRun:
    """Buses, queue names and clean-up for one test, all under one unique exchange."""

    def __init__(self) -> None:
        self.exchange = f"wltest.{uuid.uuid4().hex[:12]}"
        self.buses: list[AmqpBus] = []
        self.queues = {f"{self.exchange}.dead"}

    def queue_name(self, base: str) -> str:
        name = f"{self.exchange}.{base}"
        self.queues.add(name)
        return name

    async def started_bus(self, **options: Any) -> AmqpBus:
        options = {"host": HOST, "port": PORT, "exchange": self.exchange,
                   "connection_name": f"{self.exchange}-{len(self.buses)}",
                   "redelivery": Redelivery(max_attempts=MAX_ATTEMPTS, delay=0.05), **options}
        bus = AmqpBus(reactor, **options)
        self.buses.append(bus)
        connected = await bus.startService()
        if not connected and options["port"] == PORT:
            raise AssertionError("could not connect to RabbitMQ")
        return bus

    async def unreachable_bus(self) -> AmqpBus:
        # Port 1 on loopback: nothing listens there, so the connection is refused at once.
        return await self.started_bus(port=1, connect_timeout=1)

    def harness(self, bus: AmqpBus) -> contract.BusHarness:
        return contract.BusHarness(
            bus=bus, clock=reactor, dead_letter_queue=bus.dead_letter_queue, max_attempts=MAX_ATTEMPTS,
            queue_name=self.queue_name, quiet_time=0.4, timeout=15,
            unreachable_bus=self.unreachable_bus, second_bus=self.started_bus)

    async def clean_up(self) -> None:
        sweeper = next((bus for bus in self.buses if bus.running and bus.port == PORT), None)
        if sweeper is None:
            sweeper = await self.started_bus()
        for bus in self.buses:
            if bus is not sweeper:
                await bus.stopService()
        for queue in sorted(self.queues):
            await self._on_fresh_channel(sweeper, lambda channel, queue=queue: channel.queue_delete(queue=queue))
        await self._on_fresh_channel(sweeper, lambda channel: channel.exchange_delete(exchange=self.exchange))
        await sweeper.stopService()

    @staticmethod
    async def _on_fresh_channel(bus: AmqpBus, operation) -> None:
        await bus.wait_connected(15)
        assert bus.link is not None
        channel = await bus.link.open_channel(expect_failure=True)
        await operation(channel)
        await bus.link.close_channel(channel)


@asynccontextmanager
async def rabbit_run():
    require_rabbitmq()
    run = RabbitRun()
    try:
        yield run
    finally:
        await run.clean_up()


@pytest.mark.parametrize("check", contract.ALL, ids=lambda check: check.__name__)
@pytest_twisted.ensureDeferred
async def test_contract(check) -> None:
    async with rabbit_run() as run:
        bus = await run.started_bus()
        await check(run.harness(bus))


@pytest_twisted.ensureDeferred
async def test_bus_from_url_connects_and_round_trips() -> None:
    async with rabbit_run() as run:
        bus = bus_from_url(f"amqp://guest:guest@{HOST}:{PORT}/%2F?exchange={run.exchange}", reactor,
                           connection_name=f"{run.exchange}-url")
        run.buses.append(bus)
        assert await bus.startService()
        got: list = []
        await bus.start_consuming(lambda key, message: got.append(message), "url.#")
        await bus.produce("url.test", {"ok": True})
        await run.harness(bus).eventually(lambda: got, "the round trip")
        assert got == [{"ok": True}]


@pytest_twisted.ensureDeferred
async def test_named_queue_is_durable_and_messages_persistent() -> None:
    async with rabbit_run() as run:
        bus = await run.started_bus()
        queue = run.queue_name("durable")
        consumer = await bus.start_consuming(lambda key, message: None, "keep.#", queue=queue)
        await consumer.stop_consuming()
        await bus.produce("keep.this", {"n": 1})
        assert bus.link is not None
        channel = await bus.link.open_channel(expect_failure=True)
        fetched = await channel.basic_get(queue=queue, no_ack=True)
        await bus.link.close_channel(channel)
        assert fetched.content.properties["delivery-mode"] == 2
        assert fetched.content.body == b'{"n":1}'
        declared = await _passive_declare(bus, queue)
        assert declared is not None


async def _passive_declare(bus: AmqpBus, queue: str) -> Any:
    assert bus.link is not None
    channel = await bus.link.open_channel(expect_failure=True)
    declared = await channel.queue_declare(queue=queue, passive=True)
    await bus.link.close_channel(channel)
    return declared


async def close_from_server(bus: AmqpBus) -> str:
    """Make RabbitMQ close this bus's connection (rabbitmqctl, found by the client's port); when
    rabbitmqctl is unavailable, drop the client's transport instead. Returns which was done."""
    assert bus.link is not None and bus.link.client is not None
    port = str(bus.link.client.transport.getHost().port)
    ctl = shutil.which("rabbitmqctl")
    if ctl is not None:
        out, _err, code = await getProcessOutputAndValue(
            ctl, ["-q", "list_connections", "--no-table-headers", "pid", "peer_port"], env=dict(os.environ))
        pids = [line.split("\t")[0] for line in out.decode().splitlines() if line.split("\t")[1:] == [port]]
        if code == 0 and len(pids) == 1:
            _out, _err, code = await getProcessOutputAndValue(
                ctl, ["-q", "close_connection", pids[0], "watchline reconnect test"], env=dict(os.environ))
            if code == 0:
                return "rabbitmqctl"
    bus.link.abort()
    return "transport dropped"


@pytest_twisted.ensureDeferred
async def test_consumers_resume_after_the_connection_is_closed_and_nothing_confirmed_is_lost() -> None:
    async with rabbit_run() as run:
        bus = await run.started_bus(backoff=Backoff(initial=0.2, maximum=1.0))
        harness = run.harness(bus)
        durable: list[int] = []
        live: list[int] = []
        await bus.start_consuming(lambda key, m: durable.append(m["n"]), "fleet.#", queue=run.queue_name("fleet"))
        await bus.start_consuming(lambda key, m: live.append(m["n"]), "fleet.#")
        confirmed: list[int] = []
        refused: list[int] = []
        producing = True

        next_n = [0]

        async def keep_producing() -> None:
            while producing:
                n = next_n[0]
                next_n[0] += 1
                try:
                    await bus.produce("fleet.position", {"n": n})
                    confirmed.append(n)
                except BusUnavailable:
                    refused.append(n)
                    await deferLater(reactor, 0.01)

        producer = Deferred.fromCoroutine(keep_producing())
        await harness.eventually(lambda: len(durable) >= 50, "deliveries before the close")
        how = await close_from_server(bus)
        await harness.eventually(lambda: not bus.connected, f"the bus to notice the close ({how})")
        with pytest.raises(BusUnavailable):
            await bus.produce("fleet.position", {"n": -1})  # fails fast, never dropped silently
        await bus.wait_connected(15)
        first_after_resubscribe = next_n[0]  # published once the new transient queue was bound
        resumed_at = len(confirmed)
        await harness.eventually(lambda: len(confirmed) >= resumed_at + 50, "produce to work again")
        producing = False
        await producer
        await harness.eventually(lambda: set(confirmed) <= set(durable), "every confirmed message")
        assert set(durable) <= set(confirmed) | set(refused)
        # The unnamed consumer resubscribed on a new transient queue and gets the new messages
        # (what was published while it had no queue is gone for it: it is a live view).
        after = [n for n in confirmed if n >= first_after_resubscribe]
        await harness.eventually(lambda: set(after) <= set(live), "live messages after the reconnect")


@pytest_twisted.ensureDeferred
async def test_a_foreign_non_json_message_is_dead_lettered_not_fatal() -> None:
    async with rabbit_run() as run:
        bus = await run.started_bus()
        harness = run.harness(bus)
        got: list = []
        await bus.start_consuming(lambda key, m: got.append(m), "ext.#", queue=run.queue_name("ext"))
        assert bus.link is not None
        raw = await bus.link.open_channel()
        raw.send("basic", "publish", 0, run.exchange.encode(), b"ext.garbage", False, False,
                 content=Content(b"\xff not json", properties={"delivery-mode": 2}))
        await bus.produce("ext.fine", {"ok": True})
        await harness.eventually(lambda: got, "the good message after the bad one")
        assert got == [{"ok": True}] and bus.connected
        for _ in range(100):  # the two publishing channels are not ordered with each other
            fetched = await raw.basic_get(queue=bus.dead_letter_queue.encode(), no_ack=True)
            if fetched.content is not None:
                break
            await deferLater(reactor, 0.05)
        assert fetched.content is not None, "nothing in the dead-letter queue"
        assert fetched.content.body == b"\xff not json"
        assert fetched.content.properties["headers"] == {"x-watchline-routing-key": "ext.garbage"}


@pytest_twisted.ensureDeferred
async def test_a_restarted_service_subscribes_its_consumers_again() -> None:
    async with rabbit_run() as run:
        bus = await run.started_bus()
        harness = run.harness(bus)
        got: list = []
        await bus.start_consuming(lambda key, m: got.append(m["n"]), "r.#", queue=run.queue_name("restart"))
        await bus.produce("r.x", {"n": 1})
        await harness.eventually(lambda: got == [1], "the first message")
        await bus.stopService()
        assert not bus.connected
        with pytest.raises(BusUnavailable):
            await bus.produce("r.x", {"n": 2})
        assert await bus.startService()
        await bus.produce("r.x", {"n": 3})
        await harness.eventually(lambda: got == [1, 3], "a message after the restart")
