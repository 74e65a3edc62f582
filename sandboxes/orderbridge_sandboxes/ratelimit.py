"""A fixed-window rate limiter keyed by account.

A window opens with the first request of an account and lasts `window_ms`; it allows `quota`
requests. Requests over the quota are refused until the window ends (refused requests do not
extend it). Changing an account's quota takes effect at once, in the current window.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from orderbridge_sandboxes.config import RateLimitConfig


@dataclass(frozen=True)
class RateDecision:
    """The limiter's answer for one request, and what rate-limit headers should say."""

    allowed: bool
    quota: int
    remaining: int
    window_ms: int
    reset_ms: int

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds until the window resets, at least 1."""
        return max(1, math.ceil(self.reset_ms / 1000))

    def exhausted(self, reset_ms: int | None = None) -> RateDecision:
        """The same window, as if no request were left (for a simulated 429)."""
        return replace(
            self, allowed=False, remaining=0, reset_ms=self.reset_ms if reset_ms is None else reset_ms
        )


@dataclass
class _Window:
    start: float
    used: int = 0


class RateLimiter:
    """Thread-safe fixed-window counter per key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def _window(self, key: str, limit: RateLimitConfig, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None or (now - window.start) * 1000 >= limit.window_ms:
            window = _Window(start=now)
            self._windows[key] = window
        return window

    @staticmethod
    def _decision(window: _Window, limit: RateLimitConfig, now: float, allowed: bool) -> RateDecision:
        elapsed_ms = (now - window.start) * 1000
        return RateDecision(
            allowed=allowed,
            quota=limit.quota,
            remaining=max(0, limit.quota - window.used),
            window_ms=limit.window_ms,
            reset_ms=max(0, math.ceil(limit.window_ms - elapsed_ms)),
        )

    def hit(self, key: str, limit: RateLimitConfig) -> RateDecision:
        """Count one request for `key`; `allowed` is False when the quota is used up."""
        with self._lock:
            now = self._clock()
            window = self._window(key, limit, now)
            allowed = window.used < limit.quota
            if allowed:
                window.used += 1
            return self._decision(window, limit, now, allowed)

    def peek(self, key: str, limit: RateLimitConfig) -> RateDecision:
        """The current state for `key` without counting a request."""
        with self._lock:
            now = self._clock()
            window = self._windows.get(key)
            if window is None or (now - window.start) * 1000 >= limit.window_ms:
                return RateDecision(True, limit.quota, limit.quota, limit.window_ms, limit.window_ms)
            return self._decision(window, limit, now, window.used < limit.quota)

    def reset(self, key: str | None = None) -> None:
        """Forget one key's window, or every window."""
        with self._lock:
            if key is None:
                self._windows.clear()
            else:
                self._windows.pop(key, None)
