"""Retry delays: exponential with jitter, never shorter than what the provider asked for."""

from __future__ import annotations

import random

SQS_MAX_VISIBILITY = 43200


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> int:
    """Seconds before the next attempt: equal-jitter exponential backoff, floored by retry_after.

    Jitter spreads the retries of a burst that failed together (a provider outage) so they do
    not come back in one wave.
    """
    exp = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = exp / 2 + (rng or random).uniform(0, exp / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return int(min(SQS_MAX_VISIBILITY, max(1, round(delay))))
