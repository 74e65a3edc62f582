"""Local stand-ins for the provider APIs, over HTTP, so orderbridge runs with no provider accounts.

    from orderbridge_sandboxes import load_config, serve

    server = serve(load_config("config/sandboxes.json"), port=0)
    server.url            # http://127.0.0.1:PORT ; BigCommerce at f"{server.url}/bigcommerce"
    server.sandbox.set_fault("bigcommerce", "error_500", count=1)
    server.shutdown()

Each provider is one module (see `registry.PROVIDERS`); the shared pieces are `config`
(accounts and credentials), `state` (orders and counters), `ratelimit`, `faults`, `provider`
(the base class and the per-request runtime), `app` (Flask app and control endpoints) and
`server` (`serve()` and `main()`).
"""

from orderbridge_sandboxes.app import Sandbox, create_app, get_sandbox
from orderbridge_sandboxes.config import (
    AccountConfig,
    ProviderConfig,
    RateLimitConfig,
    SandboxConfig,
    load_config,
)
from orderbridge_sandboxes.faults import Fault, FaultMode, FaultScope
from orderbridge_sandboxes.provider import ProviderRuntime, ProviderSandbox
from orderbridge_sandboxes.ratelimit import RateDecision, RateLimiter
from orderbridge_sandboxes.registry import PROVIDERS
from orderbridge_sandboxes.server import SandboxServer, main, serve
from orderbridge_sandboxes.state import OrderRecord, SandboxState

__all__ = [
    "PROVIDERS",
    "AccountConfig",
    "Fault",
    "FaultMode",
    "FaultScope",
    "OrderRecord",
    "ProviderConfig",
    "ProviderRuntime",
    "ProviderSandbox",
    "RateDecision",
    "RateLimitConfig",
    "RateLimiter",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "create_app",
    "get_sandbox",
    "load_config",
    "main",
    "serve",
]
