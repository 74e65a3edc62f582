"""The Flask app: every registered provider under `/<provider>`, control endpoints under `/_sandbox`.

Control endpoints (JSON in, JSON out; never rate limited, never faulted):

* `GET    /_sandbox/`                     providers and their URL prefixes
* `GET    /_sandbox/<provider>`           rules enforced, masked config, fault, stats
* `GET    /_sandbox/<provider>/orders`    created orders (`?account=` filters), oldest first
* `GET    /_sandbox/<provider>/requests`  the last requests: status, fault, error text
* `GET    /_sandbox/<provider>/faults`    the active fault (`{"fault": null}` when none)
* `POST   /_sandbox/<provider>/faults`    `{"mode", "count"=1, "seconds"?, "scope"="create"|"all"}`
* `DELETE /_sandbox/<provider>/faults`    clear the fault
* `GET    /_sandbox/<provider>/stats`     requests, creates, rate_limited, per-status counters
* `GET    /_sandbox/<provider>/config`    the live config, credentials masked
* `POST   /_sandbox/<provider>/config`    deep-merge a patch: `{"rate_limit": {...}, "accounts": {...}}`
* `POST   /_sandbox/<provider>/reset`     that provider only
* `POST   /_sandbox/reset`                every provider: orders, counters, windows, faults, and the
  startup config (send `{"keep_config": true}` to keep runtime config changes)
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, InternalServerError

from orderbridge_sandboxes.config import ProviderConfig, SandboxConfig
from orderbridge_sandboxes.faults import Fault, FaultMode, FaultScope
from orderbridge_sandboxes.provider import DROP_ENVIRON_KEY, ProviderRuntime, validation_problem
from orderbridge_sandboxes.registry import ProviderRef, resolve

EXTENSION_KEY = "orderbridge_sandboxes"


class Sandbox:
    """Every mounted provider's runtime; the Python side of the control endpoints."""

    def __init__(self, config: SandboxConfig, registry: Mapping[str, ProviderRef] | None = None) -> None:
        specs = resolve(registry)
        unknown = sorted(set(config.providers) - set(specs))
        if unknown:
            raise ValueError(f"no sandbox for provider(s) {unknown}; known: {sorted(specs)}")
        self.stop_event = threading.Event()
        self.providers: dict[str, ProviderRuntime] = {
            name: ProviderRuntime(spec, config.providers.get(name, ProviderConfig()), stop=self.stop_event)
            for name, spec in specs.items()
        }

    def provider(self, name: str) -> ProviderRuntime:
        try:
            return self.providers[name]
        except KeyError:
            raise KeyError(f"no sandbox provider {name!r}; known: {sorted(self.providers)}") from None

    def set_fault(
        self,
        provider: str,
        mode: FaultMode | str,
        *,
        count: int = 1,
        seconds: float | None = None,
        scope: FaultScope | str = FaultScope.CREATE,
    ) -> Fault:
        fault = Fault.model_validate({"mode": mode, "count": count, "seconds": seconds, "scope": scope})
        return self.provider(provider).set_fault(fault)

    def clear_faults(self, provider: str | None = None) -> None:
        for name in [provider] if provider else list(self.providers):
            self.provider(name).faults.clear()

    def orders(self, provider: str, account: str | None = None) -> list[dict[str, Any]]:
        return [o.to_json() for o in self.provider(provider).state.orders(account)]

    def stats(self, provider: str) -> dict[str, Any]:
        return self.provider(provider).state.stats()

    def configure(self, provider: str, patch: dict[str, Any]) -> None:
        self.provider(provider).configure(patch)

    def reset(self, *, restore_config: bool = True) -> None:
        for runtime in self.providers.values():
            runtime.reset(restore_config=restore_config)

    def close(self) -> None:
        """Wake requests sleeping in a `timeout` fault (used when the server shuts down)."""
        self.stop_event.set()


def get_sandbox(app: Flask | None = None) -> Sandbox:
    """The `Sandbox` behind an app made by `create_app` (default: the current app)."""
    sandbox = (app or current_app).extensions[EXTENSION_KEY]
    assert isinstance(sandbox, Sandbox)
    return sandbox


class DropConnectionMiddleware:
    """Closes the client connection without a response when a request asks for it.

    A provider route marks `environ[DROP_ENVIRON_KEY]`; the app has already run (the order exists).
    Under werkzeug's server the raw socket is `environ["werkzeug.socket"]`: shutting it down and
    raising a `ConnectionError` makes werkzeug treat the request as a dropped connection, so no
    status line is ever written and the client sees the connection close.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        result = self.app(environ, start_response)
        if not environ.get(DROP_ENVIRON_KEY):
            return result  # type: ignore[no-any-return]
        close = getattr(result, "close", None)
        if close is not None:
            close()
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError("orderbridge sandbox: connection dropped after create (fault)")


def _json(data: Any, status: int = 200) -> Response:
    response = jsonify(data)
    response.status_code = status
    return response


def _control_blueprint(sandbox: Sandbox) -> Blueprint:
    bp = Blueprint("sandbox_control", __name__, url_prefix="/_sandbox")

    def runtime(provider: str) -> ProviderRuntime | Response:
        if provider not in sandbox.providers:
            return _json({"error": "unknown_provider", "known": sorted(sandbox.providers)}, 404)
        return sandbox.providers[provider]

    def body() -> dict[str, Any] | Response:
        data = request.get_json(silent=True)
        if data is None and not request.get_data():
            return {}
        if not isinstance(data, dict):
            return _json(
                {"error": "invalid", "details": [{"loc": "", "msg": "body must be a JSON object"}]}, 400
            )
        return data

    @bp.get("/")
    def index() -> Response:
        return _json(
            {
                "providers": {name: {"prefix": f"/{name}"} for name in sandbox.providers},
                "control": "/_sandbox/<provider>/{orders,requests,faults,stats,config,reset}",
            }
        )

    @bp.get("/<provider>")
    def info(provider: str) -> Response:
        rt = runtime(provider)
        if isinstance(rt, Response):
            return rt
        fault = rt.faults.current
        return _json(
            {
                "provider": provider,
                "prefix": f"/{provider}",
                "rules": list(rt.spec.rules),
                "config": rt.describe(),
                "fault": fault.model_dump(mode="json") if fault else None,
                "stats": rt.state.stats(),
            }
        )

    @bp.get("/<provider>/orders")
    def orders(provider: str) -> Response:
        rt = runtime(provider)
        if isinstance(rt, Response):
            return rt
        return _json([o.to_json() for o in rt.state.orders(request.args.get("account"))])

    @bp.get("/<provider>/requests")
    def requests_log(provider: str) -> Response:
        rt = runtime(provider)
        if isinstance(rt, Response):
            return rt
        return _json(rt.state.requests_log())

    @bp.get("/<provider>/faults")
    def get_fault(provider: str) -> Response:
        rt = runtime(provider)
        if isinstance(rt, Response):
            return rt
        fault = rt.faults.current
        return _json({"fault": fault.model_dump(mode="json") if fault else None})

    @bp.post("/<provider>/faults")
    def set_fault(provider: str) -> Response:
        rt = runtime(provider)
        if isinstance(rt, Response):
            return rt
        data = body()
        if isinstance(data, Response):
            return data
        try:
            fault = rt.set_fault(Fault.model_validate(data))
        except ValidationError as exc:
            return validation_problem(exc)
        return _json({"fault": fault.model_dump(mode="json")})

    @bp.delete("/<provider>/faults")
    def clear_fault(provider: str) -> Response:
        rt = runtime(provider)
        if isinstance(rt, Response):
            return rt
        rt.faults.clear()
        return _json({"fault": None})

    @bp.get("/<provider>/stats")
    def stats(provider: str) -> Response:
        rt = runtime(provider)
        if isinstance(rt, Response):
            return rt
        return _json(rt.state.stats())

    @bp.get("/<provider>/config")
    def get_config(provider: str) -> Response:
        rt = runtime(provider)
        if isinstance(rt, Response):
            return rt
        return _json(rt.describe())

    @bp.post("/<provider>/config")
    def set_config(provider: str) -> Response:
        rt = runtime(provider)
        if isinstance(rt, Response):
            return rt
        data = body()
        if isinstance(data, Response):
            return data
        try:
            rt.configure(data)
        except ValidationError as exc:
            return validation_problem(exc)
        return _json(rt.describe())

    @bp.post("/<provider>/reset")
    def reset_provider(provider: str) -> Response:
        rt = runtime(provider)
        if isinstance(rt, Response):
            return rt
        data = body()
        if isinstance(data, Response):
            return data
        rt.reset(restore_config=not data.get("keep_config", False))
        return _json({"reset": [provider]})

    @bp.post("/reset")
    def reset_all() -> Response:
        data = body()
        if isinstance(data, Response):
            return data
        sandbox.reset(restore_config=not data.get("keep_config", False))
        return _json({"reset": sorted(sandbox.providers)})

    return bp


def create_app(
    config: SandboxConfig | None = None, *, registry: Mapping[str, ProviderRef] | None = None
) -> Flask:
    """A Flask app serving every provider of `registry` (default: all registered) with `config`."""
    sandbox = Sandbox(config or SandboxConfig(), registry)
    app = Flask("orderbridge_sandboxes")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION_KEY] = sandbox
    for runtime in sandbox.providers.values():
        app.register_blueprint(runtime.blueprint())
    app.register_blueprint(_control_blueprint(sandbox))

    def owner() -> ProviderRuntime | None:
        first = request.path.strip("/").split("/", 1)[0]
        return sandbox.providers.get(first)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | HTTPException:
        rt = owner()
        if rt is None:
            return _json({"error": exc.name, "message": exc.description}, exc.code or 500)
        return rt.spec.error_response(exc.code or 500, _provider_message(exc))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        app.logger.exception("sandbox error", exc_info=exc)
        rt = owner()
        if rt is None:
            return _json({"error": "Internal Server Error", "message": str(exc)}, 500)
        return rt.spec.server_error_response()

    app.wsgi_app = DropConnectionMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _provider_message(exc: HTTPException) -> str:
    if isinstance(exc, InternalServerError):
        return "Internal Server Error"
    if exc.code == 404:
        return "The requested resource was not found."
    if exc.code == 405:
        return "The requested method is not supported for this resource."
    return exc.description or exc.name
