"""Rate limits held across every instance, not just inside one process: provider calls and posts."""

from orderbridge.ratelimit.limiter import DynamoDBRateLimiter, RateLimiter
from orderbridge.ratelimit.posts import PostRateLimiter

__all__ = ["DynamoDBRateLimiter", "PostRateLimiter", "RateLimiter"]
