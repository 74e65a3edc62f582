"""A tiny storefront "orders since" feed for the local run and the tests.

`GET /orders?updated_since=<iso>&limit=<n>&cursor=<c>` with `Authorization: Bearer <token>`
answers `{"orders": [...], "next_cursor": "..." | null}`: orders updated at or after
`updated_since`, oldest first, `limit` at a time. The cursor is opaque (it encodes where the next
page starts and the filter it belongs to); a cursor that does not parse is a 400. Every request is
kept in `requests` so tests can see what the importer asked for.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SAMPLE_FILE = Path(__file__).resolve().parents[2] / "config" / "imports" / "sample-feed.json"
SAMPLE_SECRET_ID = "orderbridge/imports/demo-feed"


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _encode(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    padded = cursor + "=" * (-len(cursor) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(value, dict) or not isinstance(value.get("offset"), int):
        raise ValueError("not a cursor")
    return value


class SampleFeed:
    """The feed's data and its WSGI app. `orders` may be changed while it runs."""

    def __init__(self, orders: Iterable[dict[str, Any]], *, token: str | None, max_limit: int = 100) -> None:
        self.orders = list(orders)
        self.token = token
        self.max_limit = max_limit
        self.requests: list[dict[str, Any]] = []
        self.fail_next: int | None = None  # an HTTP status to answer once (tests)
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(
                {
                    "path": request.path,
                    "args": dict(request.args),
                    "authorization": request.headers.get("Authorization"),
                }
            )
            if self.fail_next is not None:
                status, self.fail_next = self.fail_next, None
                return _json({"error": "injected failure"}, status)
        if request.path.rstrip("/") != "/orders" or request.method != "GET":
            return _json({"error": "not found"}, 404)
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _json({"error": "unauthorized"}, 401)
        since = request.args.get("updated_since")
        try:
            limit = min(max(int(request.args.get("limit", "50")), 1), self.max_limit)
            floor = _when(since) if since else None
        except ValueError:
            return _json({"error": "bad limit or updated_since"}, 400)
        offset = 0
        cursor = request.args.get("cursor")
        if cursor:
            try:
                decoded = _decode(cursor)
            except ValueError:
                return _json({"error": "invalid cursor"}, 400)
            offset, since = decoded["offset"], decoded.get("since")
            floor = _when(since) if since else None
        with self._lock:
            matching = sorted(
                (o for o in self.orders if floor is None or _when(o["updated_at"]) >= floor),
                key=lambda o: (_when(o["updated_at"]), str(o.get("id"))),
            )
        page = matching[offset : offset + limit]
        more = offset + limit < len(matching)
        next_cursor = _encode({"offset": offset + limit, "since": since}) if more else None
        return _json({"orders": page, "next_cursor": next_cursor}, 200)


def _json(body: Any, status: int) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


class FeedServer:
    """A `SampleFeed` served over HTTP on localhost: `.url`, `.feed`, `.shutdown()`."""

    def __init__(self, feed: SampleFeed, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.feed = feed
        self._server: BaseWSGIServer = make_server(host, port, feed, threaded=True, request_handler=_Quiet)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="sample-feed", daemon=True
        )

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def load_sample(path: Path = SAMPLE_FILE) -> dict[str, Any]:
    """`{"token": ..., "orders": [...]}`: the local run's sample feed."""
    return json.loads(path.read_text())


def serve_sample(secretsmanager: Any, *, path: Path = SAMPLE_FILE, port: int = 0) -> FeedServer:
    """Serve the sample feed and put its token where the importer reads it (Secrets Manager)."""
    sample = load_sample(path)
    value = json.dumps({"token": sample["token"]})
    try:
        secretsmanager.create_secret(Name=SAMPLE_SECRET_ID, SecretString=value)
    except secretsmanager.exceptions.ResourceExistsException:
        secretsmanager.put_secret_value(SecretId=SAMPLE_SECRET_ID, SecretString=value)
    return FeedServer(SampleFeed(sample["orders"], token=sample["token"]), port=port).start()
