"""A local API Gateway: HTTP requests become proxy events for the real intake handler, in the shape
of a REST API (payload 1.0, the default), an HTTP API or a Function URL (payload 2.0):
`LocalApi(shape=...)` (`orderbridge-local up --api-shape`) or ORDERBRIDGE_LOCAL_EVENT_SHAPE=rest|http|url."""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from orderbridge_local.lambda_runtime import LocalContext, invocation

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
STAGE = "v1"
SHAPES = ("rest", "http", "url")  # REST API (payload 1.0), HTTP API and Function URL (payload 2.0)
SHAPE_ENV = "ORDERBRIDGE_LOCAL_EVENT_SHAPE"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _route_path(path: str) -> str:
    """The path a route sees: served at the root and, as API Gateway's default endpoint serves it,
    under the stage (`/v1/orders/...`), so the `status_url`s the intake builds work locally."""
    if path == f"/{STAGE}" or path.startswith(f"/{STAGE}/"):
        return path[len(STAGE) + 1 :] or "/"
    return path


def to_event(request: Request, body: bytes) -> dict[str, Any]:
    """The proxy event API Gateway (REST, v1 payload) would build for this request."""
    try:
        text, is_b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode(), True
    headers = {k: v for k, v in request.headers.items()}
    multi_headers: dict[str, list[str]] = {}
    for k, v in request.headers.items():
        multi_headers.setdefault(k, []).append(v)
    query = {k: v for k, v in request.args.items()} or None
    return {
        "resource": _route_path(request.path),
        "path": _route_path(request.path),
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: request.args.getlist(k) for k in request.args} or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "resourcePath": _route_path(request.path),
            "httpMethod": request.method,
            "path": f"/{STAGE}{_route_path(request.path)}",
            "identity": {
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.user_agent.string,
            },
        },
        "body": text if body or request.method in ("POST", "PUT", "PATCH") else None,
        "isBase64Encoded": is_b64,
    }


def to_event_v2(request: Request, body: bytes, *, shape: str = "http") -> dict[str, Any]:
    """The payload 2.0 event the template's HTTP API (`IntakeApiType=HTTP`: stage `v1`, so `rawPath`
    starts with `/v1`) or a Function URL (no stage) would build."""
    try:
        text, is_b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode(), True
    headers: dict[str, str] = {}
    for k, v in request.headers.items():  # 2.0 lower-cases names and joins repeats with commas
        if k.lower() != "cookie":
            headers[k.lower()] = f"{headers[k.lower()]},{v}" if k.lower() in headers else v
    cookies = [c.strip() for c in request.headers.get("Cookie", "").split(";") if c.strip()]
    query = request.query_string.decode()
    now = time.time()
    stage = STAGE if shape == "http" else "$default"
    path = f"/{STAGE}{_route_path(request.path)}" if shape == "http" else request.path
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": {k: ",".join(request.args.getlist(k)) for k in request.args} or None,
        "requestContext": {
            "accountId": "123456789012" if shape == "http" else "anonymous",
            "apiId": "local",
            "domainName": request.host,
            "http": {
                "method": request.method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.user_agent.string,
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": is_b64,
    }
    if cookies:
        event["cookies"] = cookies
    if body:
        event["body"] = text
    if shape == "http":
        event["pathParameters"] = None
        event["stageVariables"] = None
    return event


def to_response(result: dict[str, Any]) -> Response:
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    response = Response(data, status=int(result.get("statusCode", 502)))
    for k, v in (result.get("headers") or {}).items():
        response.headers[k] = v
    for cookie in result.get("cookies") or []:  # payload 2.0
        response.headers.add("Set-Cookie", cookie)
    for k, values in (result.get("multiValueHeaders") or {}).items():
        if values:
            response.headers[k] = values[0]  # replaces werkzeug's default Content-Type
            for v in values[1:]:
                response.headers.add(k, v)
    return response


class LocalApi:
    """Serves one handler on localhost, the way API Gateway invokes it."""

    def __init__(
        self,
        *,
        handler: Handler,
        function_name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        shape: str | None = None,
    ) -> None:
        self.shape = shape or os.environ.get(SHAPE_ENV, "rest")
        if self.shape not in SHAPES:
            raise ValueError(f"event shape {self.shape!r}: choose rest, http or url")
        self._handler = handler
        self._function_name = function_name
        self._lock = threading.Lock()  # one invocation at a time, like one Lambda instance
        self._server: BaseWSGIServer = make_server(host, port, self._wsgi, threaded=True)
        self.port = self._server.server_port
        url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # every interface: say the local one
        self.url = f"http://{url_host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-api", daemon=True)

    def start(self) -> LocalApi:
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._server.shutdown()

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        if (request.content_length or 0) > API_GATEWAY_MAX_BODY:
            response = Response('{"message":"Request Too Long"}', status=413, content_type="application/json")
            return response(environ, start_response)
        body = request.get_data(cache=False)
        event = (
            to_event(request, body) if self.shape == "rest" else to_event_v2(request, body, shape=self.shape)
        )
        with self._lock:
            context = LocalContext(function_name=self._function_name)
            with invocation(context):
                result = self._handler(event, context)
        return to_response(result)(environ, start_response)
