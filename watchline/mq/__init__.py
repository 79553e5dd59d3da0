"""The bus: ``bus_from_url`` picks the backend named by config ``[mq] url``.

``memory://`` (the default) is the in-process bus; ``amqp://user:pass@host:port/vhost`` is
RabbitMQ. Both return an unstarted twisted Service implementing ``watchline.mq.base.Bus``.
"""

from __future__ import annotations

from typing import Any

from watchline.mq.base import DEAD_LETTER_QUEUE, Bus, BusUnavailable, Consumer, Message

__all__ = ["DEAD_LETTER_QUEUE", "Bus", "BusUnavailable", "Consumer", "Message", "bus_from_url"]


def bus_from_url(url: str, reactor: Any, **options: Any) -> Any:
    """The bus for ``url``; ``options`` go to the backend's constructor (e.g. ``redelivery``).

    Raises ValueError for an unknown scheme or a malformed URL.
    """
    if not isinstance(url, str):
        raise ValueError(f"bus URL must be a string, not {url!r}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        if url.rstrip("/") != "memory:":
            raise ValueError(f"a memory:// URL takes no host, path or options: {url!r}")
        from watchline.mq.memory import MemoryBus

        return MemoryBus(reactor, **options)
    if scheme == "amqp":
        from watchline.mq.amqp import AmqpBus

        return AmqpBus.from_url(url, reactor, **options)
    if scheme == "amqps":
        raise ValueError(f"amqps:// (TLS) is not supported yet; use amqp:// on a trusted network: {url!r}")
    raise ValueError(f"unsupported bus URL {url!r}: expected memory:// or amqp://user:pass@host:port/vhost")
