"""Run the sandboxes over HTTP: `serve()` for tests and the local run, `main()` for a terminal.

python -m orderbridge_sandboxes --config config/sandboxes.json --port 4010
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from orderbridge_sandboxes.app import Sandbox, create_app, get_sandbox
from orderbridge_sandboxes.config import SandboxConfig, load_config
from orderbridge_sandboxes.registry import ProviderRef


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class _LoggingHandler(WSGIRequestHandler):
    pass


class SandboxServer:
    """A running sandbox: `.url`, `.port`, `.app`, `.sandbox`; `.shutdown()` stops it."""

    def __init__(self, app: Flask, server: BaseWSGIServer, host: str) -> None:
        self.app = app
        self.sandbox: Sandbox = get_sandbox(app)
        self._server = server
        self.host = host
        self.port: int = int(server.socket.getsockname()[1])
        url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        url_host = "[::1]" if url_host == "::" else (f"[{url_host}]" if ":" in url_host else url_host)
        self.url = f"http://{url_host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="orderbridge-sandboxes",
            daemon=True,
        )
        self._stopped = False

    def start(self) -> SandboxServer:
        self._thread.start()
        return self

    def provider_url(self, provider: str) -> str:
        """The base URL of one provider, e.g. `http://127.0.0.1:4010/bigcommerce`."""
        return f"{self.url}/{provider}"

    def shutdown(self) -> None:
        """Stop serving, wake requests held by a `timeout` fault, release the port."""
        if self._stopped:
            return
        self._stopped = True
        self.sandbox.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self) -> None:
        """Block until `shutdown()` is called (from another thread or a signal handler)."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()


def serve(
    config: SandboxConfig | str | Path | Mapping[str, Any] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    registry: Mapping[str, ProviderRef] | None = None,
    log_requests: bool = False,
) -> SandboxServer:
    """Start the sandboxes on werkzeug's threaded server in a background thread (port 0: any free one).

    `config` is a `SandboxConfig`, a path to a JSON file, or the JSON's dict form.
    """
    if config is None:
        config = SandboxConfig()
    elif isinstance(config, str | Path):
        config = load_config(config)
    elif not isinstance(config, SandboxConfig):
        config = SandboxConfig.model_validate(dict(config))
    app = create_app(config, registry=registry)
    handler = _LoggingHandler if log_requests else _QuietHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    return SandboxServer(app, server, host).start()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderbridge_sandboxes", description="Local provider sandboxes")
    parser.add_argument(
        "--config", "-c", type=Path, help="sandbox accounts (JSON), e.g. config/sandboxes.json"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", "-p", type=int, default=4010)
    parser.add_argument("--quiet", action="store_true", help="no access log")
    args = parser.parse_args(argv)

    config = load_config(args.config) if args.config else SandboxConfig()
    server = serve(config, host=args.host, port=args.port, log_requests=not args.quiet)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"provider sandboxes on {server.url}", flush=True)
    for name, runtime in server.sandbox.providers.items():
        accounts = ", ".join(runtime.config.accounts) or "no accounts"
        print(f"  {name:<12} {server.url}/{name}  ({accounts})", flush=True)
    print(f"  control      {server.url}/_sandbox/", flush=True)
    server.wait()
    return 0
