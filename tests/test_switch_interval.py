"""Parts of the lab that need the GIL often hold the switch interval short, together."""

from __future__ import annotations

import sys
import threading

import pytest

from rico_lab import _switch_interval
from rico_lab._switch_interval import SWITCH_INTERVAL_S, hold, release

pytestmark = pytest.mark.unit

SHORT_US = round(SWITCH_INTERVAL_S * 1e6)


def now_us() -> int:
    """The switch interval in microseconds, as Python keeps it."""
    return round(sys.getswitchinterval() * 1e6)


@pytest.fixture
def interval():
    """Python's interval as a user may have set it (3 ms), put back after the test."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.003)
    yield 3000
    while _switch_interval._holders:  # a failed test's holds
        release()
    sys.setswitchinterval(before)


def test_the_last_of_several_holders_puts_back_the_interval_from_before(interval):
    hold()
    assert now_us() == SHORT_US
    hold()  # an agent starts speaking while a notebook cell runs
    release()  # the cell ends; the agent still speaks
    assert now_us() == SHORT_US
    release()
    assert now_us() == interval


def test_holders_on_many_threads_leave_the_interval_as_it_was(interval):
    def speak() -> None:
        for _ in range(200):
            hold()
            release()

    threads = [threading.Thread(target=speak) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert now_us() == interval and _switch_interval._holders == 0


def test_an_interval_already_shorter_is_left_alone(interval):
    sys.setswitchinterval(SWITCH_INTERVAL_S / 2)
    shorter = now_us()
    hold()
    assert now_us() == shorter < SHORT_US
    release()
    assert now_us() == shorter


def test_a_release_without_a_hold_is_refused(interval):
    with pytest.raises(RuntimeError, match="released more often than held"):
        release()
