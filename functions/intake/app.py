"""Intake function: storefront forms, signed webhooks and status polls over API Gateway.

The same answers whichever way the function is invoked: a REST API proxy event (payload 1.0),
an HTTP API event (payload 2.0) or a Lambda Function URL event (also 2.0). A 2.0 event is read
into the REST shape the routes use and the answer written back in 2.0's (headers, cookies); an
event with only `multiValueHeaders` gets its `headers` from them. `API_BASE_PATH` (comma
separated, e.g. `/shop`) names custom-domain base paths that prefix every route.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from orderbridge import wiring
from orderbridge.exceptions import (
    ConfigurationError,
    CredentialsError,
    IntakeRejectedError,
    IntakeUnavailableError,
)
from orderbridge.intake.http import (
    accepted_response,
    api_base_path,
    cors_headers,
    error_response,
    raw_body,
)
from orderbridge.settings import IntakeEnvironment

logger = Logger()
# The handler is traced, its routes not: Tracer.capture_method logs every exception at ERROR with
# its traceback, and a refused request (4xx) is the client's mistake, not an error of ours.
tracer = Tracer()
metrics = Metrics()
# Read once per execution environment; a missing or bad variable is a SettingsError naming it.
env = IntakeEnvironment.from_environ()
BASE_PATHS = list(env.api_base_paths)
app = APIGatewayRestResolver(strip_prefixes=BASE_PATHS or None)
service = wiring.intake_service(env)


@app.post("/forms/<form_key>")
def submit_form(form_key: str) -> Response:
    event = app.current_event
    origin = event.headers.get("origin")
    cors = cors_headers(service.allowed_origin(form_key, origin))
    try:
        accepted = service.submit_form(
            form_key=form_key,
            content_type=event.headers.get("content-type"),
            body=raw_body(event.body, event.is_base64_encoded),
            origin=origin,
            ip=event.request_context.identity.source_ip,
            user_agent=event.headers.get("user-agent"),
        )
    except IntakeRejectedError as exc:  # a shop's page must be able to read its field errors
        response = error_response(exc)
        response.headers.update(cors)
        return response
    if accepted.redirect_url:  # a buyer is sent there: only to a checkout page the stack knows
        from orderbridge.storefront.web import checked_accepted

        accepted = checked_accepted(accepted, service.config.load())
    html_form = "urlencoded" in (event.headers.get("content-type") or "")
    return accepted_response(accepted, cors, html_form=html_form, base_path=api_base_path(event.raw_event))


@app.route("/forms/<form_key>", method="OPTIONS")
def preflight(form_key: str) -> Response:
    allowed = service.allowed_origin(form_key, app.current_event.headers.get("origin"))
    return Response(status_code=204 if allowed else 403, headers=cors_headers(allowed))


@app.post("/webhooks/<source>")
def receive_webhook(source: str) -> Response:
    event = app.current_event
    body = raw_body(event.body, event.is_base64_encoded)
    accepted = service.receive_webhook(source=source, headers=event.headers, body=body)
    if accepted is None:
        return Response(status_code=200, content_type="application/json", body={"ignored": True})
    return accepted_response(accepted, base_path=api_base_path(app.current_event.raw_event))


@app.get("/orders/<tracking_id>")
def order_status(tracking_id: str) -> Response:
    from orderbridge.storefront.web import checked_status, is_tracking_id

    # Only `ob_` + 32 hex digits is ever a tracking id: anything else is not found without a
    # DynamoDB call (whose key limit an overlong id would hit as a 500).
    found = service.status(tracking_id) if is_tracking_id(tracking_id) else None
    if found is None:
        raise IntakeRejectedError(404, "NOT_FOUND", "no order with that tracking id")
    return Response(
        status_code=200, content_type="application/json", body=checked_status(found, service.config.load())
    )


# --- storefront order form (orderbridge.storefront): pages, snippet, the browser's post -----------


_STOREFRONT: Any = None


def _storefront() -> Any:
    """Built on first use: pages are rare next to API posts, so they stay off the cold start."""
    global _STOREFRONT
    if _STOREFRONT is None:
        from orderbridge.storefront import Storefront

        _STOREFRONT = Storefront(service=service)
    return _STOREFRONT


@app.get("/forms/<form_key>")
def storefront_form(form_key: str) -> Response:
    from orderbridge.storefront.web import api_root

    return _storefront().form_page(form_key, root=api_root(app.current_event.path))


@app.get("/forms/<form_key>/embed")
def storefront_snippet(form_key: str) -> Response:
    from orderbridge.storefront.web import public_base

    event = app.current_event
    base = public_base(event.headers, event.path, event.request_context.path)
    return _storefront().snippet(form_key, base=base)


@app.post("/forms/<form_key>/submit")
def storefront_submit(form_key: str) -> Response:
    from orderbridge.storefront.web import api_root

    event = app.current_event
    return _storefront().submit(
        form_key,
        headers=event.headers,
        body=raw_body(event.body, event.is_base64_encoded),
        ip=event.request_context.identity.source_ip,
        user_agent=event.headers.get("user-agent"),
        root=api_root(event.path),
        base_path=api_base_path(event.raw_event),
    )


@app.get("/forms/<form_key>/confirmation/<tracking_id>")
def storefront_confirmation(form_key: str, tracking_id: str) -> Response:
    from orderbridge.storefront.web import api_root

    return _storefront().confirmation_page(form_key, tracking_id, root=api_root(app.current_event.path))


@app.get("/forms/<form_key>/orders/<tracking_id>")
def storefront_order_status(form_key: str, tracking_id: str) -> Response:
    origin = app.current_event.headers.get("origin")
    return _storefront().order_status(form_key, tracking_id, origin=origin)


@app.get("/storefront/<asset>")
def storefront_asset(asset: str) -> Response:
    return _storefront().asset(asset)


@app.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI document of these routes (also saved as openapi/intake.openapi.json)."""
    from orderbridge.intake import openapi  # only this route needs it: keeps cold starts lean

    return Response(status_code=200, content_type="application/json", body=openapi.document(app))


@app.not_found
def no_route(_exc: Exception) -> Response:
    """Unknown path or method: the same error shape as every other refusal."""
    return error_response(IntakeRejectedError(404, "NOT_FOUND", "no such resource"))


@app.exception_handler(IntakeRejectedError)
def rejected(exc: IntakeRejectedError) -> Response:
    return error_response(exc)


# One registration per class: Powertools matches a handler by class (a tuple is never matched).
@app.exception_handler(ConfigurationError)
@app.exception_handler(CredentialsError)
@app.exception_handler(IntakeUnavailableError)
def unavailable(exc: Exception) -> Response:
    """Ours, not the sender's: 503 JSON, and a retry is safe (the same order gets the same id)."""
    logger.exception("intake dependency unavailable")
    response = error_response(IntakeRejectedError(503, "SERVICE_UNAVAILABLE", "try again shortly"))
    response.headers["Retry-After"] = "5"
    return response


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_payload_v2(event):
        return response_v2(app.resolve(event_v1(event), context))
    return app.resolve(with_single_headers(event), context)


def is_payload_v2(event: dict[str, Any]) -> bool:
    """HTTP API payload 2.0 and Function URL events: `version` 2.0 and `requestContext.http`."""
    return event.get("version") == "2.0" and isinstance((event.get("requestContext") or {}).get("http"), dict)


def with_single_headers(event: dict[str, Any]) -> dict[str, Any]:
    """A REST event with `multiValueHeaders` only gets `headers` (each header's last value)."""
    if event.get("headers") or not event.get("multiValueHeaders"):
        return event
    multi = event["multiValueHeaders"]
    return event | {"headers": {k: v[-1] for k, v in multi.items() if isinstance(v, list) and v}}


def event_v1(event: dict[str, Any]) -> dict[str, Any]:
    """A payload 2.0 event (HTTP API, Function URL) in the REST proxy shape the routes read."""
    from urllib.parse import parse_qs

    context = event.get("requestContext") or {}
    http = context.get("http") or {}
    path = event.get("rawPath") or http.get("path") or "/"
    stage = context.get("stage") or "$default"
    if stage != "$default" and path.startswith(f"/{stage}/"):  # a named stage prefixes rawPath
        path = path[len(stage) + 1 :]
    headers = dict(event.get("headers") or {})
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    query = parse_qs(event.get("rawQueryString") or "", keep_blank_values=True)
    return {
        "resource": path,
        "path": path,
        "httpMethod": http.get("method") or "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": event.get("queryStringParameters"),
        "multiValueQueryStringParameters": query or None,
        "pathParameters": event.get("pathParameters"),
        "stageVariables": event.get("stageVariables"),
        "requestContext": {
            "accountId": context.get("accountId"),
            "apiId": context.get("apiId"),
            "domainName": context.get("domainName"),
            "stage": stage,
            "requestId": context.get("requestId"),
            "httpMethod": http.get("method"),
            "resourcePath": path,
            "path": event.get("rawPath") or path,
            "identity": {"sourceIp": http.get("sourceIp"), "userAgent": http.get("userAgent")},
        },
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }


def response_v2(result: dict[str, Any]) -> dict[str, Any]:
    """A REST-shaped answer for payload 2.0: `multiValueHeaders` folded into `headers` (2.0 reads
    no `multiValueHeaders`) and Set-Cookie into `cookies`."""
    headers = dict(result.get("headers") or {})
    cookies: list[str] = list(result.get("cookies") or [])
    for name, values in (result.pop("multiValueHeaders", None) or {}).items():
        if name.lower() == "set-cookie":
            cookies += values
        elif values:
            headers[name] = ", ".join(values)
    out = result | {"headers": headers}
    if cookies:
        out["cookies"] = cookies
    return out
