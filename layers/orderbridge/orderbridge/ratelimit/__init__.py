"""Provider rate limits held across every dispatcher instance, not just inside one process."""

from orderbridge.ratelimit.limiter import DynamoDBRateLimiter, RateLimiter

__all__ = ["DynamoDBRateLimiter", "RateLimiter"]
