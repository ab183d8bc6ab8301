"""Loop: wake, stop, and a bad round logged once while the loop goes on."""

from __future__ import annotations

import logging
import threading

import pytest

from exporter.loop import Loop
from tests.conftest import wait_for


class Flaky(Loop):
    def __init__(self, failures: int) -> None:
        super().__init__("flaky", interval=60.0)
        self.failures = failures
        self.rounds = 0
        self.ran = threading.Event()

    def round(self) -> None:
        self.rounds += 1
        self.ran.set()
        if self.rounds <= self.failures:
            raise RuntimeError("a bad round")


def test_a_bad_round_is_logged_once_and_the_loop_recovers(caplog: pytest.LogCaptureFixture) -> None:
    loop = Flaky(failures=3)
    with caplog.at_level(logging.INFO):
        loop.start()
        try:
            for expected in range(2, 6):  # the interval is a minute: each round is woken
                wait_for(lambda expected=expected: loop.rounds >= expected - 1)
                loop.wake()
            wait_for(lambda: loop.rounds >= 5 and not loop.failing)
            assert loop.is_alive()
        finally:
            loop.stop()
    assert caplog.text.count("flaky: round failed") == 1
    assert caplog.text.count("flaky: rounds succeed again") == 1
    assert not loop.is_alive()


def test_stop_ends_a_long_sleep_at_once() -> None:
    loop = Flaky(failures=0)
    loop.start()
    wait_for(loop.ran.is_set)
    loop.stop(timeout=2)
    assert not loop.is_alive()
