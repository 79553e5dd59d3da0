"""Messages per second through the bus: produce (with publisher confirm on RabbitMQ) and consume.

    python bench/bus.py [--messages N] [--amqp-url amqp://guest:guest@127.0.0.1:5672/] [--no-amqp]

Prints one JSON object. Each run produces position-report-sized messages to a named queue with one
consumer (an ``async def`` callback that does nothing) and stops the clock when the consumer has
seen them all. RabbitMQ runs use their own exchange and queue and delete them afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

from twisted.internet import defer, task

from watchline.mq import bus_from_url


def report(n: int) -> dict[str, Any]:
    return {"protocol": "jt808", "terminal_id": "13800138000", "time": "2024-05-01T08:00:00Z",
            "lat": 22.543096, "lon": 114.057865, "speed_kmh": 42.5, "course": 270, "altitude": 12,
            "valid": True, "alarms": [], "seq": n}


async def measure(reactor: Any, bus: Any, messages: int, window: int, prefetch: int, queue: str) -> dict:
    seen = 0
    all_seen: defer.Deferred[None] = defer.Deferred()

    async def consume(routing_key: str, message: dict) -> None:
        nonlocal seen
        seen += 1
        if seen == messages:
            all_seen.callback(None)

    await bus.start_consuming(consume, "report.#", queue=queue, prefetch=prefetch)
    started = time.perf_counter()
    produced_at = 0.0

    async def produce_share(first: int) -> None:
        for n in range(first, messages, window):
            await bus.produce(f"report.jt808.{n % 1000}", report(n))

    # `window` producers each awaiting their own produce: at most `window` unconfirmed messages.
    producers = [defer.Deferred.fromCoroutine(produce_share(first)) for first in range(window)]
    await defer.gatherResults(producers, consumeErrors=True)
    produced_at = time.perf_counter() - started
    await all_seen
    elapsed = time.perf_counter() - started
    return {"messages": messages, "in_flight_window": window, "prefetch": prefetch,
            "produce_seconds": round(produced_at, 3), "seconds": round(elapsed, 3),
            "messages_per_s": round(messages / elapsed)}


async def bench_memory(reactor: Any, messages: int) -> dict:
    bus = bus_from_url("memory://", reactor)
    await bus.startService()
    try:
        return await measure(reactor, bus, messages, window=1, prefetch=1, queue="bench")
    finally:
        await bus.stopService()


async def bench_amqp(reactor: Any, url: str, messages: int, window: int, prefetch: int) -> dict:
    exchange = f"wlbench.{uuid.uuid4().hex[:8]}"
    bus = bus_from_url(url, reactor, exchange=exchange, connection_name=exchange)
    if not await bus.startService():
        await bus.stopService()
        return {"error": f"cannot connect to {url}"}
    queue = f"{exchange}.positions"
    try:
        return await measure(reactor, bus, messages, window=window, prefetch=prefetch, queue=queue)
    finally:
        for name in (queue, bus.dead_letter_queue):
            channel = await bus.link.open_channel(expect_failure=True)
            await channel.queue_delete(queue=name)
            await bus.link.close_channel(channel)
        channel = await bus.link.open_channel(expect_failure=True)
        await channel.exchange_delete(exchange=exchange)
        await bus.link.close_channel(channel)
        await bus.stopService()


async def main(reactor: Any, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--amqp-messages", type=int, default=20_000)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--no-amqp", action="store_true")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"memory": await bench_memory(reactor, args.messages)}
    if not args.no_amqp:
        results["amqp_confirmed_window_1"] = await bench_amqp(reactor, args.amqp_url, args.amqp_messages // 10,
                                                              window=1, prefetch=1)
        results["amqp_confirmed_window_256"] = await bench_amqp(reactor, args.amqp_url, args.amqp_messages,
                                                                window=256, prefetch=256)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1:])))
