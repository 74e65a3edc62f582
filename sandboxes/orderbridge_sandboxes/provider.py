"""What a provider module implements (`ProviderSandbox`) and what the framework gives it (`ProviderRuntime`).

A provider module subclasses `ProviderSandbox`: its name, its account model, its error shape,
its rate-limit headers, and `register()` which adds its routes to a blueprint mounted at
`/<name>`. Inside a route, the runtime does the shared work::

    account = rt.account(store_id)                  # None: unknown account -> answer 404
    if not account.accepts(credential): ...         # -> answer 401 in the provider's shape
    if (early := rt.gate(store_id, create=True)):   # rate limit and faults
        return early
    ... validate, then ...
    record = rt.record_order(store_id, build)       # keeps request JSON, headers, the order

The runtime adds the provider's rate-limit headers to every answer for a known account, counts
requests and statuses, and performs `drop_after_create` once an order was recorded.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from flask import Blueprint, Response, g, jsonify, request
from pydantic import ValidationError

from orderbridge_sandboxes.config import (
    AccountConfig,
    ProviderConfig,
    RateLimitConfig,
    deep_merge,
    strip_comments,
)
from orderbridge_sandboxes.faults import AFTER_MODES, BEFORE_MODES, Fault, FaultMode, FaultSwitch
from orderbridge_sandboxes.ratelimit import RateDecision, RateLimiter
from orderbridge_sandboxes.state import OrderRecord, SandboxState

#: WSGI environ key the drop middleware looks for.
DROP_ENVIRON_KEY = "orderbridge_sandboxes.drop_connection"
REDACTED = "<redacted>"


class ProviderSandbox(ABC):
    """One provider's API, faithful enough that adapters cannot tell the difference."""

    #: URL prefix and registry key.
    name: ClassVar[str]
    #: Validates each account of this provider (subclass `AccountConfig` for extra settings).
    account_model: ClassVar[type[AccountConfig]] = AccountConfig
    #: Used when neither the account nor the provider config sets a rate limit.
    default_rate_limit: ClassVar[RateLimitConfig] = RateLimitConfig()
    #: First order id per account.
    first_order_id: ClassVar[int] = 1
    #: Request headers kept with each created order (case-insensitive).
    recorded_headers: ClassVar[tuple[str, ...]] = (
        "Content-Type",
        "Accept",
        "User-Agent",
        "Authorization",
        "Idempotency-Key",
    )
    #: Of those, the ones whose values are credentials: kept as "<redacted>".
    secret_headers: ClassVar[frozenset[str]] = frozenset({"authorization"})
    #: Human-readable rules the sandbox enforces (served at `GET /_sandbox/<name>`).
    rules: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def register(self, bp: Blueprint, rt: ProviderRuntime) -> None:
        """Add the provider's routes to `bp` (mounted at `/<name>`)."""

    @abstractmethod
    def error_response(self, status: int, message: str) -> Response:
        """An error answer in the provider's own shape."""

    def server_error_response(self) -> Response:
        return self.error_response(500, "Internal Server Error")

    def rate_limit_headers(self, decision: RateDecision) -> dict[str, str]:
        """Quota headers sent with every answer for a known account (none by default)."""
        return {}

    def retry_after_headers(self, seconds: int) -> dict[str, str]:
        return {"Retry-After": str(seconds)}

    def rate_limited_response(self, decision: RateDecision | None, retry_after: int | None) -> Response:
        """The provider's 429. `retry_after=None`: send no retry header."""
        response = self.error_response(429, "Too many requests.")
        if retry_after is not None:
            response.headers.update(self.retry_after_headers(retry_after))
        return response


class ProviderRuntime:
    """A mounted provider: its live config, state, rate limiter and fault switch."""

    def __init__(self, spec: ProviderSandbox, config: ProviderConfig, *, stop: threading.Event) -> None:
        self.spec = spec
        self.name = spec.name
        self.state = SandboxState(spec.name, first_id=spec.first_order_id)
        self.limiter = RateLimiter()
        self.faults = FaultSwitch()
        self._stop = stop
        self._lock = threading.RLock()
        self.config = self._validated(dump_provider_config(config))
        self._initial = self.config.model_copy(deep=True)

    # --- configuration ----------------------------------------------------------------------------

    def _validated(self, data: dict[str, Any]) -> ProviderConfig:
        config = ProviderConfig.model_validate(strip_comments(data))
        accounts = {
            key: self.spec.account_model.model_validate(account.model_dump())
            for key, account in config.accounts.items()
        }
        return config.model_copy(update={"accounts": accounts})

    def configure(self, patch: dict[str, Any]) -> ProviderConfig:
        """Deep-merge `patch` into the live config (a `null` removes a key). Raises ValidationError."""
        with self._lock:
            self.config = self._validated(
                deep_merge(dump_provider_config(self.config), strip_comments(patch))
            )
            return self.config

    def describe(self) -> dict[str, Any]:
        """The live config with credentials masked."""
        with self._lock:
            data = self.config.model_dump(mode="json", exclude={"accounts"})
            data["accounts"] = {k: a.masked() for k, a in self.config.accounts.items()}
            data["effective_rate_limits"] = {
                k: self.rate_limit_for(k).model_dump() for k in self.config.accounts
            }
            return data

    def account(self, account_id: str) -> AccountConfig | None:
        """The account's config, or None if unknown. Marks the request as belonging to it."""
        with self._lock:
            account = self.config.accounts.get(account_id)
        if account is not None:
            g.sandbox_account = account_id
        return account

    def rate_limit_for(self, account_id: str) -> RateLimitConfig:
        with self._lock:
            account = self.config.accounts.get(account_id)
            if account is not None and account.rate_limit is not None:
                return account.rate_limit
            return self.config.rate_limit or self.spec.default_rate_limit

    def reset(self, *, restore_config: bool = True) -> None:
        """Forget orders, counters, rate-limit windows and the fault; restore the startup config."""
        with self._lock:
            self.state.reset()
            self.limiter.reset()
            self.faults.clear()
            if restore_config:
                self.config = self._initial.model_copy(deep=True)

    def set_fault(self, fault: Fault | dict[str, Any]) -> Fault:
        return self.faults.set(fault if isinstance(fault, Fault) else Fault.model_validate(fault))

    # --- inside a provider route ------------------------------------------------------------------

    def gate(self, account_id: str, *, create: bool) -> Response | None:
        """Rate limit and faults for an authenticated request. A Response means: answer with it."""
        g.sandbox_create = create
        decision = self.limiter.hit(account_id, self.rate_limit_for(account_id))
        g.sandbox_rate = decision
        if not decision.allowed:
            return self.spec.rate_limited_response(decision, decision.retry_after_seconds)

        fault = self.faults.take(create=create, modes=BEFORE_MODES)
        if fault is not None:
            self.state.incr(f"faults.{fault.mode}")
            g.sandbox_fault = str(fault.mode)
            if fault.mode is FaultMode.ERROR_500:
                return self.spec.server_error_response()
            if fault.mode is FaultMode.RATE_LIMIT:
                seconds = max(1, round(fault.delay))
                g.sandbox_rate = decision.exhausted(reset_ms=seconds * 1000)
                return self.spec.rate_limited_response(g.sandbox_rate, seconds)
            if fault.mode is FaultMode.RATE_LIMIT_NO_HEADER:
                g.sandbox_no_rate_headers = True
                return self.spec.rate_limited_response(None, None)
            if fault.mode is FaultMode.TIMEOUT:
                self._stop.wait(fault.delay)  # then carry on as usual

        if self.faults.peek(create=create, modes=AFTER_MODES) is not None:
            g.sandbox_drop_armed = True
        return None

    def recorded_headers(self) -> dict[str, str]:
        kept: dict[str, str] = {}
        for name in self.spec.recorded_headers:
            value = request.headers.get(name)
            if value is not None:
                kept[name] = REDACTED if name.lower() in self.spec.secret_headers else value
        return kept

    def record_order(
        self,
        account_id: str,
        build: Callable[[int], dict[str, Any]],
        *,
        extra: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
        request_body: Any = None,
    ) -> OrderRecord:
        """Keep a created order with the request exactly as received (`request_body`: the part of
        it that is the provider's request, for a sandbox-only route); `build(id)` makes the order."""
        record = self.state.add_order(
            account_id,
            build,
            request=request.get_json(silent=True) if request_body is None else request_body,
            raw_body=request.get_data(as_text=True),
            headers=self.recorded_headers(),
            extra=extra,
        )
        g.sandbox_created = True
        return record

    # --- hooks ------------------------------------------------------------------------------------

    def blueprint(self) -> Blueprint:
        bp = Blueprint(f"sandbox_{self.name}", __name__, url_prefix=f"/{self.name}")
        self.spec.register(bp, self)
        bp.before_request(self._before)
        bp.after_request(self._after)
        return bp

    def _before(self) -> None:
        g.sandbox_started = time.monotonic()
        self.state.incr("requests")

    def _after(self, response: Response) -> Response:
        status = response.status_code
        self.state.incr(f"status.{status}")
        if status == 429:
            self.state.incr("rate_limited")
        account_id: str | None = g.get("sandbox_account")
        if account_id is not None and not g.get("sandbox_no_rate_headers"):
            decision: RateDecision | None = g.get("sandbox_rate")
            if decision is None:
                decision = self.limiter.peek(account_id, self.rate_limit_for(account_id))
            response.headers.update(self.spec.rate_limit_headers(decision))

        dropped = False
        create = bool(g.get("sandbox_create"))
        if g.get("sandbox_drop_armed") and (g.get("sandbox_created") or not create):
            fault = self.faults.take(create=create, modes=AFTER_MODES)
            if fault is not None:
                request.environ[DROP_ENVIRON_KEY] = True
                self.state.incr(f"faults.{fault.mode}")
                self.state.incr("dropped")
                g.sandbox_fault = str(fault.mode)
                dropped = True

        self.state.log(
            {
                "method": request.method,
                "path": request.full_path.rstrip("?"),
                "account": account_id,
                "status": status,
                "fault": g.get("sandbox_fault"),
                "dropped": dropped,
                "created": bool(g.get("sandbox_created")),
                "ms": round((time.monotonic() - g.get("sandbox_started", time.monotonic())) * 1000, 1),
                "error": _error_text(response) if status >= 400 else None,
            }
        )
        return response


def dump_provider_config(config: ProviderConfig) -> dict[str, Any]:
    """The config as plain data, each account dumped with its own (possibly provider-specific) model."""
    data = config.model_dump(exclude={"accounts"})
    data["accounts"] = {k: a.model_dump() for k, a in config.accounts.items()}
    return data


def _error_text(response: Response) -> str | None:
    if response.is_streamed or not response.is_json:
        return None
    text = response.get_data(as_text=True)
    return text[:500]


def validation_problem(exc: ValidationError) -> Response:
    """A control-endpoint 400 for a pydantic error."""
    response = jsonify(
        {
            "error": "invalid",
            "details": [
                {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
                for e in exc.errors(include_url=False)
            ],
        }
    )
    response.status_code = 400
    return response
