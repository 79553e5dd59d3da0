"""Topic matching and the input checks every backend shares."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchline.mq.base import (
    check_filter,
    check_prefetch,
    check_routing_key,
    decode_message,
    encode_message,
    topic_matches,
    topic_regex,
)


def reference_match(filter_words: list[str], key_words: list[str]) -> bool:
    """AMQP topic semantics, word by word: '*' is one word, '#' zero or more."""
    if not filter_words:
        return not key_words
    head, rest = filter_words[0], filter_words[1:]
    if head == "#":
        return any(reference_match(rest, key_words[i:]) for i in range(len(key_words) + 1))
    if not key_words:
        return False
    return (head == "*" or head == key_words[0]) and reference_match(rest, key_words[1:])


key_words = st.lists(st.sampled_from(["a", "b", "ab", "a+b", "[x]", "$", ""]), min_size=1, max_size=6)
filter_words = st.lists(st.sampled_from(["a", "b", "ab", "a+b", "[x]", "*", "#", ""]), min_size=1, max_size=6)


@given(filter_words, key_words)
def test_topic_regex_agrees_with_word_by_word_matching(filter: list[str], key: list[str]) -> None:
    assert topic_matches(".".join(filter), ".".join(key)) == reference_match(filter, key)


@pytest.mark.parametrize("filter, key, expected", [
    ("#", "a", True), ("#", "a.b.c", True),
    ("a.#", "a", True), ("a.#", "a.b.c", True), ("a.#", "ab", False), ("a.#", "b.a", False),
    ("#.b", "b", True), ("#.b", "x.y.b", True), ("#.b", "xb", False),
    ("a.#.b", "a.b", True), ("a.#.b", "a.x.y.b", True), ("a.#.b", "a.x.y", False),
    ("#.#", "a", True), ("#.a.#", "a", True), ("#.a.#", "b", False),
    ("*", "a", True), ("*", "a.b", False), ("*.b", "b", False), ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False), ("*.#", "a", True), ("#.*", "a.b", True),
    ("report.jt808", "report.jt808", True), ("report.jt808", "report.jt8080", False),
])
def test_topic_examples(filter: str, key: str, expected: bool) -> None:
    assert topic_matches(filter, key) is expected
    assert (topic_regex(filter).search(key) is not None) is expected  # anchored both ends


@pytest.mark.parametrize("key", ["", "a..b", ".a", "a.", "a.*", "#", "x" * 256, None, 5])
def test_bad_routing_keys_are_refused(key) -> None:
    with pytest.raises(ValueError):
        check_routing_key(key)


def test_good_routing_keys_pass() -> None:
    check_routing_key("report.jt808.013800138000")
    check_routing_key("incident.opened")
    check_routing_key("粤B12345")


@pytest.mark.parametrize("filter", ["", "a..#", ".a", None, "y" * 256])
def test_bad_filters_are_refused(filter) -> None:
    with pytest.raises(ValueError):
        check_filter(filter)


@pytest.mark.parametrize("prefetch", [0, -1, 65536, 1.5, True, "2"])
def test_bad_prefetch_is_refused(prefetch) -> None:
    with pytest.raises(ValueError):
        check_prefetch(prefetch)


class StrSubclass(str):
    pass


class FloatSubclass(float):
    pass


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), _json_values, max_size=6))
def test_encoding_decodes_to_what_the_reference_json_encoder_writes(message) -> None:
    # orjson writes most messages, the stdlib the rest: either way the body means what the stdlib's would.
    reference = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert decode_message(encode_message(message)) == json.loads(reference)
    assert json.loads(encode_message(message)) == json.loads(reference)


def test_subclasses_and_long_integers_keep_their_json_meaning() -> None:
    assert decode_message(encode_message({"s": StrSubclass("x"), "f": FloatSubclass(1.5), 3: 2**70})) == {
        "s": "x", "f": 1.5, "3": 2**70}
    assert decode_message(b'{"n": -9223372036854775809, "m": 123456789012345678901234567890}') == {
        "n": -9223372036854775809, "m": 123456789012345678901234567890}
    assert decode_message(b'{"n": NaN}')["n"] != decode_message(b'{"n": NaN}')["n"]  # read as before: a NaN


def test_messages_are_compact_utf8_json_objects() -> None:
    assert encode_message({"plate": "粤B1", "n": [1, 2.5, None]}) == '{"plate":"粤B1","n":[1,2.5,null]}'.encode()
    assert decode_message(b'{"a": 1}') == {"a": 1}
    assert decode_message('{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("message", [
    [1], "text", {"t": {1, 2}}, {"x": float("inf")}, {"b": b"bytes"}, {"when": datetime(2026, 5, 1)},
    {"n": None, "deep": [1, {"x": (2.5, float("nan"))}]}, {"n": None, "big": 2**70, "x": -float("inf")},
    {"f": FloatSubclass("nan")}, {"s": StrSubclass("x"), "x": float("nan")},
])
def test_unencodable_messages_raise_type_error(message) -> None:
    with pytest.raises(TypeError):
        encode_message(message)


@pytest.mark.parametrize("body", [b"[1]", b"not json", b"\xff\xfe", b"", b'"text"'])
def test_undecodable_bodies_raise_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_message(body)
