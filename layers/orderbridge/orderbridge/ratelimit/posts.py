"""Abuse limits on public form posts, per form key and per client, across every intake instance.

The intake scales out like the dispatcher, so the limits live in the same shared GCRA table
(`DynamoDBRateLimiter`, keys prefixed `intake:`), never in one process. A client is its source
IP, which is personal data: it is only ever stored as a keyed hash (HMAC-SHA256 with a key from
Secrets Manager), so the table holds no IP and a leaked table cannot be reversed by hashing
every IPv4 address.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from orderbridge.ratelimit.limiter import RateLimiter

if TYPE_CHECKING:
    from orderbridge.models.config import Limit

logger = Logger(child=True)


class PostRateLimiter:
    """Reserve one post for a client of a form; answer how long to wait when over a limit."""

    def __init__(self, *, limiter: RateLimiter, hash_key: Callable[[], bytes | None]) -> None:
        self._limiter = limiter
        self._hash_key = hash_key

    def client_id(self, ip: str) -> str | None:
        """The keyed hash standing in for an IP (None when the key is unavailable)."""
        key = self._hash_key()
        if not key:
            return None
        return hmac.new(key, ip.encode(), hashlib.sha256).hexdigest()[:32]

    def retry_after(
        self, *, form_key: str, ip: str | None, per_client: Limit | None, per_form: Limit | None
    ) -> int | None:
        """Seconds the caller must wait (a 429), or None when the post may go ahead.

        A failure of the table or of the hash key lets the post through: the API stage's own
        throttling still holds, and a rate limiter must not take the storefront down.
        """
        checks: list[tuple[str, Limit]] = []
        if per_client is not None and ip:
            try:
                client = self.client_id(ip)
            except Exception:
                logger.warning("client hash key unavailable; per-client limit skipped", exc_info=True)
                client = None
            if client is not None:
                checks.append((f"intake:client:{form_key}:{client}", per_client))
        if per_form is not None:
            checks.append((f"intake:form:{form_key}", per_form))
        for key, limit in checks:
            try:
                wait = self._limiter.try_acquire(
                    key, limit=limit.requests, per_seconds=limit.per_seconds, burst=limit.burst
                )
            except Exception:
                logger.warning("rate limit table unavailable; post let through", exc_info=True)
                return None
            if wait > 0:
                return max(1, math.ceil(wait))
        return None
