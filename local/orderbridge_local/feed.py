"""A tiny storefront "orders since" feed for the local run and the tests.

Three shapes (`shape=`):

* `cursor` (default): `GET /orders?updated_since=<iso>&limit=<n>&cursor=<c>` with
  `Authorization: Bearer <token>` answers `{"orders": [...], "next_cursor": "..." | null}`: orders
  updated at or after `updated_since`, oldest first, `limit` at a time. The cursor is opaque (it
  encodes where the next page starts and the filter it belongs to); a cursor that does not parse
  is a 400.
* `shopify`, shaped like Shopify's REST `orders.json`: `updated_at_min` (inclusive), `limit`
  (at most 250), `order=updated_at asc|desc`, `status`; the next page is in a
  `Link: <...page_info=...>; rel="next"` header, and a request with `page_info` may carry nothing
  but `limit` (400 otherwise, as Shopify). `page_info` is keyset (after this update time and id).
  Token in `X-Shopify-Access-Token` (or Bearer).
* `woocommerce`, shaped like WooCommerce's `wc/v3/orders`: a bare JSON array, `page` (from 1) and
  `per_page` (at most 100), `orderby=modified|date|id`, `order=desc` (the default, newest first)
  or `asc`, `modified_after` (exclusive: strictly after), `X-WP-Total` and `X-WP-TotalPages`
  headers; a page past the last is a 400 (`rest_post_invalid_page_number`).

Every request is kept in `requests` so tests can see what the importer asked for.
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

    def __init__(
        self,
        orders: Iterable[dict[str, Any]],
        *,
        token: str | None,
        max_limit: int = 100,
        shape: str = "cursor",
        time_field: str = "updated_at",
    ) -> None:
        self.orders = list(orders)
        self.token = token
        self.max_limit = max_limit
        self.shape = shape
        self.time_field = time_field
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
        path = request.path.rstrip("/")
        if not (path.endswith("/orders") or path.endswith("/orders.json")) or request.method != "GET":
            return _json({"error": "not found"}, 404)
        if self.token is not None and self.token not in (
            (request.headers.get("Authorization") or "").removeprefix("Bearer "),
            request.headers.get("X-Shopify-Access-Token"),
        ):
            return _json({"error": "unauthorized"}, 401)
        if self.shape == "shopify":
            return self._shopify(request)
        if self.shape == "woocommerce":
            return self._woocommerce(request)
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
                (o for o in self.orders if floor is None or self._at(o) >= floor),
                key=lambda o: (self._at(o), str(o.get("id"))),
            )
        page = matching[offset : offset + limit]
        more = offset + limit < len(matching)
        next_cursor = _encode({"offset": offset + limit, "since": since}) if more else None
        return _json({"orders": page, "next_cursor": next_cursor}, 200)

    def _at(self, order: dict[str, Any]) -> datetime:
        return _when(order[self.time_field])

    def _key(self, order: dict[str, Any]) -> tuple[datetime, str]:
        return self._at(order), str(order.get("id"))

    def _shopify(self, request: Request) -> Response:
        args = dict(request.args)
        try:
            limit = min(max(int(args.pop("limit", "50")), 1), min(self.max_limit, 250))
        except ValueError:
            return _json({"errors": "bad limit"}, 400)
        page_info = args.pop("page_info", None)
        if page_info:
            if set(args) - {"fields"}:
                return _json({"errors": "page_info cannot be used with other parameters"}, 400)
            try:
                state = _decode_keyset(page_info)
            except ValueError:
                return _json({"errors": "invalid page_info"}, 400)
        else:
            state = {"min": args.get("updated_at_min"), "order": args.get("order", "id asc"), "after": None}
        desc = state["order"].endswith("desc")
        try:
            floor = _when(state["min"]) if state["min"] else None
        except ValueError:
            return _json({"errors": "bad updated_at_min"}, 400)
        with self._lock:
            matching = sorted(
                (o for o in self.orders if floor is None or self._at(o) >= floor), key=self._key, reverse=desc
            )
        if state["after"] is not None:
            after = (_when(state["after"][0]), state["after"][1])
            matching = [o for o in matching if (self._key(o) < after if desc else self._key(o) > after)]
        page, more = matching[:limit], len(matching) > limit
        headers = {}
        if more:
            last = page[-1]
            token = _encode({**state, "after": [last[self.time_field], str(last.get("id"))], "offset": 0})
            headers["Link"] = f'<{request.base_url}?limit={limit}&page_info={token}>; rel="next"'
        return _json({"orders": page}, 200, headers)

    def _woocommerce(self, request: Request) -> Response:
        args = request.args
        try:
            per_page = min(max(int(args.get("per_page", "10")), 1), min(self.max_limit, 100))
            page_no = int(args.get("page", "1"))
            after = _when(args["modified_after"]) if args.get("modified_after") else None
        except ValueError:
            return _json({"code": "rest_invalid_param"}, 400)
        orderby = args.get("orderby", "date")
        field = {"modified": self.time_field, "date": "date_created_gmt", "id": "id"}.get(orderby)
        if field is None:
            return _json({"code": "rest_invalid_param"}, 400)
        with self._lock:
            matching = [o for o in self.orders if after is None or self._at(o) > after]
        matching.sort(
            key=lambda o: (str(o.get(field, "")) if field != "id" else int(o["id"]), int(o["id"])),
            reverse=args.get("order", "desc") == "desc",
        )
        total_pages = -(-len(matching) // per_page)
        if page_no < 1 or (page_no > total_pages and page_no > 1):
            return _json({"code": "rest_post_invalid_page_number"}, 400)
        page = matching[(page_no - 1) * per_page : page_no * per_page]
        headers = {"X-WP-Total": str(len(matching)), "X-WP-TotalPages": str(total_pages)}
        return _json(page, 200, headers)


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers)


def _decode_keyset(token: str) -> dict[str, Any]:
    padded = token + "=" * (-len(token) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(value, dict) or "order" not in value:
        raise ValueError("not a page_info")
    return value


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
