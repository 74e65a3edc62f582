"""Sending provider requests: one pooled HTTP session, timeouts, transport errors classified."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from orderbridge.providers.base import ProviderRequest, ProviderResult, ResultKind

USER_AGENT = "orderbridge/0.1 (+https://github.com/orderbridge)"


def new_session() -> requests.Session:
    session = requests.Session()
    # No automatic retries: a blind re-send of a create call could double an order.
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=16, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


class Sender:
    """Sends one request with connect/read timeouts."""

    def __init__(self, *, timeout: float, session: requests.Session | None = None) -> None:
        self._session = session or new_session()
        self._timeout = (min(3.05, timeout), timeout)

    def send(
        self, request: ProviderRequest, auth_headers: dict[str, str]
    ) -> requests.Response | ProviderResult:
        """The provider's response, or a RETRYABLE result when no response arrived.

        A read timeout or a dropped connection means the provider may have created the order:
        such results carry `unknown_result=True` so the next attempt looks before re-sending.
        """
        kwargs: dict[str, Any] = {
            "params": request.params,
            "headers": {**request.headers, **auth_headers},
            "timeout": self._timeout,
            "allow_redirects": False,
        }
        if request.json is not None:
            kwargs["json"] = request.json
        try:
            return self._session.request(request.method, request.url, **kwargs)
        except requests.exceptions.ConnectTimeout:
            return ProviderResult(
                kind=ResultKind.RETRYABLE,
                error_code="CONNECT_TIMEOUT",
                error_message="could not connect to the provider in time",
            )
        except requests.exceptions.Timeout:
            return ProviderResult(
                kind=ResultKind.RETRYABLE,
                error_code="TIMEOUT",
                error_message="the provider did not answer in time",
                unknown_result=True,
            )
        except requests.exceptions.RequestException as exc:
            return ProviderResult(
                kind=ResultKind.RETRYABLE,
                error_code="CONNECTION_ERROR",
                error_message=f"connection failed: {type(exc).__name__}",
                unknown_result=True,
            )
