"""Topic matching and the input checks every backend shares."""

from __future__ import annotations

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


def test_messages_are_compact_utf8_json_objects() -> None:
    assert encode_message({"plate": "粤B1", "n": [1, 2.5, None]}) == '{"plate":"粤B1","n":[1,2.5,null]}'.encode()
    assert decode_message(b'{"a": 1}') == {"a": 1}
    assert decode_message('{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("message", [[1], "text", {"t": {1, 2}}, {"x": float("inf")}, {"b": b"bytes"}])
def test_unencodable_messages_raise_type_error(message) -> None:
    with pytest.raises(TypeError):
        encode_message(message)


@pytest.mark.parametrize("body", [b"[1]", b"not json", b"\xff\xfe", b"", b'"text"'])
def test_undecodable_bodies_raise_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_message(body)
