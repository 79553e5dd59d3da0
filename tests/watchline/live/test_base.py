"""Position times, TTLs and value encoding shared by the live-state backends."""

from __future__ import annotations

import pytest

from watchline.live.base import check_ttl, decode_value, encode_value, position_time_us, ttl_milliseconds


@pytest.mark.parametrize("time, expected_us", [
    ("1970-01-01T00:00:00Z", 0),
    ("2024-05-01T10:00:00Z", 1714557600_000000),
    ("2024-05-01T12:00:00+02:00", 1714557600_000000),
    ("2024-05-01T10:00:00.5Z", 1714557600_500000),
    ("2024-05-01T10:00:00.000001+00:00", 1714557600_000001),
    ("2024-05-01T10:00:00", 1714557600_000000),  # no offset: UTC
    ("1969-12-31T23:59:59Z", -1_000000),
])
def test_position_time_is_the_instant_in_microseconds(time: str, expected_us: int) -> None:
    assert position_time_us({"time": time}) == expected_us


@pytest.mark.parametrize("position", [{}, {"time": ""}, {"time": "10:00"}, {"time": 5}, {"time": "2024-13-01T00:00:00Z"}])
def test_bad_position_times_are_refused(position: dict) -> None:
    with pytest.raises(ValueError):
        position_time_us(position)


def test_ttls() -> None:
    check_ttl(None)
    check_ttl(0.001)
    with pytest.raises(ValueError):
        check_ttl(None, optional=False)
    for bad in (0, -2, True, float("nan"), "1"):
        with pytest.raises(ValueError):
            check_ttl(bad)
    assert ttl_milliseconds(0.0001) == 1 and ttl_milliseconds(2.5) == 2500


def test_values_are_compact_json() -> None:
    assert encode_value({"plate": "粤B1", "n": [1, None]}) == '{"plate":"粤B1","n":[1,null]}'
    assert decode_value(b'{"a":1}') == {"a": 1} and decode_value(None) is None
    with pytest.raises(TypeError):
        encode_value({1, 2})
