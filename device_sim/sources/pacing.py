"""Real-time pacing shared by every source: samples leave no faster than the sensor makes them."""

from __future__ import annotations

import time


class Pacer:
    """Sleeps so that ``wait(n)`` calls deliver at most ``sample_rate`` samples per second.

    Time is measured from construction with a monotonic clock, so a slow consumer is not punished
    by extra sleeps (it catches up), and with ``enabled=False`` it never sleeps (``--fast``).
    """

    def __init__(self, sample_rate: float, enabled: bool) -> None:
        self._rate, self._enabled = sample_rate, enabled
        self._started = time.monotonic()
        self._delivered = 0

    def wait(self, n: int) -> None:
        self._delivered += n
        if self._enabled:
            delay = self._started + self._delivered / self._rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
