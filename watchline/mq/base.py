"""The bus interface: topic-routed JSON messages between Watchline's parts.

Two real backends implement it — in-process (``memory://``) and RabbitMQ (``amqp://``) — and a
recording fake serves tests. Routing keys are dot-separated words (``report.jt808.13800138000``,
``incident.opened``); consumer filters use AMQP topic wildcards: ``*`` matches one word, ``#`` zero or
more words.

Delivery contract, the same for every backend:
- ``produce`` resolves only once the backend has durably accepted the message (RabbitMQ: publisher
  confirm; in-process: queued). It fails (raises ``BusUnavailable``) when the message was not
  accepted, so a caller that got success may ack its own source.
- A consumer's callback may return a value, a Deferred or a coroutine; the message is acknowledged
  only after it completes. If it fails, the message is not lost: it is redelivered a bounded number
  of times and then moved to a dead-letter queue (``watchline.dead``), logged.
- A *named* queue is durable and shared: consumers on the same queue name compete (each message goes
  to one of them) — that is how workers scale out. An unnamed consumer gets its own transient queue
  (every message matching its filter; gone when it stops) — for live event streams.
- Per queue, messages are delivered to the callback in the order produced, one at a time per consumer
  unless ``prefetch`` > 1 says otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

Message = dict[str, Any]
Callback = Callable[[str, Message], Any | Awaitable[Any]]


class BusUnavailable(Exception):
    """The bus did not accept a message (broker down, not confirmed, stopped)."""


class Consumer(Protocol):
    async def stop_consuming(self) -> None: ...


class Bus(Protocol):
    async def produce(self, routing_key: str, message: Message) -> None: ...

    async def start_consuming(
        self, callback: Callback, filter: str, queue: str | None = None, prefetch: int = 1
    ) -> Consumer: ...


DEAD_LETTER_QUEUE = "watchline.dead"  # where messages go after ``max_attempts`` failed deliveries
DEFAULT_MAX_ATTEMPTS = 5
MAX_ROUTING_KEY_BYTES = 255  # AMQP shortstr


def topic_regex(filter: str) -> re.Pattern[str]:
    """Compile an AMQP topic filter (``*`` one word, ``#`` zero or more words) to a regex that
    matches whole routing keys.

    Each word after the first brings its own leading dot, so a ``#`` standing for zero words
    disappears together with its separator (``a.#`` matches ``a``; ``a.#.b`` matches ``a.b``).
    Only a leading ``#`` needs two branches: when it takes no word, the next word has no dot
    before it. Words may be empty, as in RabbitMQ (``a..b`` has three words).
    """
    words: list[str] = []
    for word in filter.split("."):
        if not (word == "#" and words and words[-1] == "#"):  # "#.#" means the same as "#"
            words.append(word)
    return re.compile(r"\A(?:" + _topic_pattern(words, at_start=True) + r")\Z")


def _topic_pattern(words: list[str], at_start: bool) -> str:
    if not words:
        return ""
    word, rest = words[0], words[1:]
    if word == "#":
        if at_start:
            return (r"(?:[^.]*(?:\.[^.]*)*" + _topic_pattern(rest, at_start=False)
                    + "|" + _topic_pattern(rest, at_start=True) + ")")
        return r"(?:\.[^.]*)*" + _topic_pattern(rest, at_start=False)
    separator = "" if at_start else r"\."
    pattern = r"[^.]*" if word == "*" else re.escape(word)
    return separator + pattern + _topic_pattern(rest, at_start=False)


def topic_matches(filter: str, routing_key: str) -> bool:
    return topic_regex(filter).match(routing_key) is not None


def check_routing_key(routing_key: str) -> None:
    """Refuse keys a topic exchange cannot route meaningfully: empty words, wildcards, too long."""
    if not isinstance(routing_key, str) or not routing_key:
        raise ValueError(f"routing key must be a non-empty string, not {routing_key!r}")
    if len(routing_key.encode()) > MAX_ROUTING_KEY_BYTES:
        raise ValueError(f"routing key longer than {MAX_ROUTING_KEY_BYTES} bytes: {routing_key[:40]!r}...")
    for word in routing_key.split("."):
        if not word or word in ("*", "#"):
            raise ValueError(f"bad routing key {routing_key!r}: empty word or wildcard")


def check_filter(filter: str) -> None:
    if not isinstance(filter, str) or not filter:
        raise ValueError(f"filter must be a non-empty string, not {filter!r}")
    if len(filter.encode()) > MAX_ROUTING_KEY_BYTES:
        raise ValueError(f"filter longer than {MAX_ROUTING_KEY_BYTES} bytes: {filter[:40]!r}...")
    if any(not word for word in filter.split(".")):
        raise ValueError(f"bad filter {filter!r}: empty word")


def check_prefetch(prefetch: int) -> None:
    if not isinstance(prefetch, int) or isinstance(prefetch, bool) or not 1 <= prefetch <= 65535:
        raise ValueError(f"prefetch must be an integer in 1..65535, not {prefetch!r}")


# The stdlib encoder is the reference: what it refuses, the bus refuses (NaN and infinities included,
# which JSON cannot carry). orjson encodes the common message ~10x faster; anything it cannot take as
# is (non-str keys, integers past 64 bits, str/int/dict/list subclasses, datetimes, dataclasses) goes
# to the stdlib encoder, which encodes it or raises the TypeError. The one thing orjson does silently
# that the stdlib refuses is writing a non-finite float as null, hence ``_has_non_finite``. (orjson
# also writes UUIDs and enums by value, where the stdlib raises; a consumer gets their JSON form.)
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_decoder = json.JSONDecoder()
_LONG_DIGITS = re.compile(r"[0-9]{19}")  # 19 digits can leave int64 (-9223372036854775809)
_LONG_DIGIT_BYTES = re.compile(rb"[0-9]{19}")
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def encode_message(message: Message) -> bytes:
    """Compact UTF-8 JSON of a message. Every backend encodes, so what works in memory works on RabbitMQ.

    Raises TypeError for a message that is not a dict or holds something JSON cannot carry."""
    if not isinstance(message, dict):
        raise TypeError(f"a bus message is a dict, not {type(message).__name__}")
    try:
        body = orjson.dumps(message, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError; recursion too deep is one too
        return _encode_reference(message).encode()
    # A non-finite float comes out as null, so a body without null cannot have held one.
    if b"null" in body and _has_non_finite(message):
        raise TypeError("bus message is not JSON-serialisable: NaN or infinite float")
    return body


def _encode_reference(message: Message) -> str:
    try:
        return _encoder.encode(message)
    except (TypeError, ValueError, RecursionError) as e:
        raise TypeError(f"bus message is not JSON-serialisable: {e}") from None


def _has_non_finite(value: Any) -> bool:
    """Whether a float NaN or infinity is anywhere in ``value``. Only exact floats, dicts, lists
    and tuples need a look: orjson passed every subclass to the reference encoder. (Runs for every
    message with a null in it, so it is written for speed: ``x - x`` is 0.0, which is false, for
    every finite float and NaN, which is true, for the others.)"""
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind is float and bool(value - value)
    for item in items:
        kind = type(item)
        if kind is float:
            if item - item:
                return True
        elif (kind is dict or kind is list or kind is tuple) and _has_non_finite(item):
            return True
    return False


def _decode_reference(body: bytes | str) -> Any:
    return _decoder.decode(body if isinstance(body, str) else bytes(body).decode())


def decode_message(body: bytes | str) -> Message:
    """Parse a JSON body; ValueError (UnicodeDecodeError, JSONDecodeError) when it is not a JSON object."""
    # orjson reads an integer past 64 bits as a float; the reference decoder keeps it exact.
    if (_LONG_DIGITS if isinstance(body, str) else _LONG_DIGIT_BYTES).search(body):
        message = _decode_reference(body)
    else:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            # The reference decoder reads what orjson refuses (NaN literals, lone surrogates) or
            # raises its own ValueError for a bad body.
            message = _decode_reference(body)
    if not isinstance(message, dict):
        raise ValueError(f"bus message body is JSON {type(message).__name__}, not an object")
    return message
