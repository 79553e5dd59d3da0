"""The shared media clock: absolute-time scheduling, catch-up, no drift."""

from __future__ import annotations

import random

from twisted.internet.task import Clock

from callflows.media.clock import MediaClock


class Counter:
    def __init__(self):
        self.ticks = 0

    def tick(self):
        self.ticks += 1


def test_one_timer_ticks_every_stream():
    clock = Clock()
    media = MediaClock(clock)
    a, b = Counter(), Counter()
    media.add(a)
    media.add(b)
    for _ in range(50):
        clock.advance(0.02)
    assert a.ticks == b.ticks == 50
    assert len(clock.getDelayedCalls()) == 1
    media.remove(a)
    media.remove(b)
    assert clock.getDelayedCalls() == []


def test_no_drift_over_ten_minutes_of_jittery_wakeups():
    clock = Clock()
    media = MediaClock(clock)
    stream = Counter()
    media.add(stream)
    rng = random.Random(7)
    while clock.seconds() < 600:
        # wake up late by up to 15 ms each time, as a busy reactor does
        calls = clock.getDelayedCalls()
        clock.advance(max(0.0, calls[0].getTime() - clock.seconds()) + rng.uniform(0, 0.015))
    assert abs(stream.ticks - clock.seconds() / 0.02) <= 1
    assert media.skipped == 0


def test_far_behind_skips_instead_of_bursting():
    clock = Clock()
    media = MediaClock(clock, max_catch_up=5)
    stream = Counter()
    media.add(stream)
    clock.advance(1.0)  # a blocked reactor: 50 ticks due at once
    assert stream.ticks == 5 and media.skipped == 45
    clock.advance(0.02)
    assert stream.ticks == 6


def test_a_failing_stream_is_dropped_and_others_continue():
    clock = Clock()
    media = MediaClock(clock)

    class Broken:
        def tick(self):
            raise ValueError("bug")

    good = Counter()
    media.add(Broken())
    media.add(good)
    clock.advance(0.02)
    clock.advance(0.02)
    assert good.ticks == 2 and len(media) == 1
