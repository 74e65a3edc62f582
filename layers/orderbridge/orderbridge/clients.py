"""boto3 clients created once per process and reused across invocations.

The endpoint comes from boto3's own `AWS_ENDPOINT_URL` variable, so the local run points every
client at moto's server without code of ours knowing about it.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=10,
)


_LOCK = threading.Lock()


@cache
def _session() -> boto3.session.Session:
    # One session for every client: building a session loads botocore's data files again.
    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    """Return the process-wide client for `service` (one per service, created on first use)."""
    with _LOCK:  # a session may not build clients from two threads at once
        return _session().client(service, config=_CONFIG)  # type: ignore[call-overload]
