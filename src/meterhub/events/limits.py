"""Per-event-type rate limiting: a token bucket refilled at ``max_per_minute / 60`` per second.

The bucket holds at most ``max_per_minute`` tokens, so a burst of a full minute's allowance
passes at once and the long-run rate never exceeds the limit (the seeds'
``MAX_METRICS_PER_MINUTE``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Thread-safe token bucket; ``take()`` is True while the rate allows one more event.

    Example::

        >>> t = [0.0]
        >>> bucket = TokenBucket(2, clock=lambda: t[0])
        >>> bucket.take(), bucket.take(), bucket.take()
        (True, True, False)
        >>> t[0] = 30.0              # half a minute refills one token
        >>> bucket.take()
        True
    """

    __slots__ = ("_clock", "_last", "_lock", "_rate", "_tokens", "capacity")

    def __init__(self, max_per_minute: int, clock: Callable[[], float]) -> None:
        self.capacity = float(max_per_minute)
        self._rate = max_per_minute / 60.0
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            tokens = self._tokens + (now - self._last) * self._rate
            self._last = now
            if tokens > self.capacity:
                tokens = self.capacity
            if tokens >= 1.0:
                self._tokens = tokens - 1.0
                return True
            self._tokens = tokens
            return False
