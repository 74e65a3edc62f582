"""A local API Gateway: HTTP requests become REST API proxy events for the real intake handler."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from orderbridge_local.lambda_runtime import LocalContext

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
STAGE = "v1"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


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
        "resource": request.path,
        "path": request.path,
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
            "resourcePath": request.path,
            "httpMethod": request.method,
            "path": f"/{STAGE}{request.path}",
            "identity": {
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.user_agent.string,
            },
        },
        "body": text if body or request.method in ("POST", "PUT", "PATCH") else None,
        "isBase64Encoded": is_b64,
    }


def to_response(result: dict[str, Any]) -> Response:
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    response = Response(data, status=int(result.get("statusCode", 502)))
    for k, v in (result.get("headers") or {}).items():
        response.headers[k] = v
    for k, values in (result.get("multiValueHeaders") or {}).items():
        if values:
            response.headers[k] = values[0]  # replaces werkzeug's default Content-Type
            for v in values[1:]:
                response.headers.add(k, v)
    return response


class LocalApi:
    """Serves one handler on localhost, the way API Gateway invokes it."""

    def __init__(
        self, *, handler: Handler, function_name: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._handler = handler
        self._function_name = function_name
        self._lock = threading.Lock()  # one invocation at a time, like one Lambda instance
        self._server: BaseWSGIServer = make_server(host, port, self._wsgi, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
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
        event = to_event(request, body)
        with self._lock:
            result = self._handler(event, LocalContext(function_name=self._function_name))
        return to_response(result)(environ, start_response)
