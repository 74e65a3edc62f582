"""HTTP answers of the intake, shared by the Lambda function and anything else serving it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import Response

from orderbridge.exceptions import IntakeRejectedError
from orderbridge.intake.service import Accepted

CORS_ALLOW_HEADERS = "Content-Type"
# a stage or base path: one or more plain path segments, nothing a client could smuggle a URL in
_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def cors_headers(origin: str | None) -> dict[str, str]:
    if not origin:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def api_base_path(event: Mapping[str, Any]) -> str:
    """The path prefix under which a client reached this API: `/v1` on the default endpoint, a
    custom domain's base path (`/shop`), or "" (a custom domain mapped at its root).

    API Gateway (REST, proxy events) gives the path the client used as `requestContext.path`
    (`/v1/forms/k` on the default endpoint, `/shop/forms/k` under a base path mapping). The route
    itself is `resource` with its path parameters filled in (`/forms/{form_key}` -> `/forms/k`);
    the prefix is what comes before it. Anything unexpected gives "" (the route as is).
    """
    context = event.get("requestContext") or {}
    client_path = context.get("path")
    if not isinstance(client_path, str):
        return ""
    route = event.get("resource")
    parameters = event.get("pathParameters") or {}
    if isinstance(route, str) and "{" in route:
        for name, value in parameters.items():
            route = route.replace(f"{{{name}+}}", str(value)).replace(f"{{{name}}}", str(value))
    if not isinstance(route, str) or "{" in route:
        route = event.get("path")
    if not isinstance(route, str) or not route.startswith("/") or not client_path.endswith(route):
        return ""
    prefix = client_path[: len(client_path) - len(route)].rstrip("/")
    if prefix and (
        not _BASE_PATH.fullmatch(prefix) or any(s.strip(".") == "" for s in prefix.split("/")[1:])
    ):
        return ""
    return prefix


def status_url(tracking_id: str, base_path: str = "") -> str:
    """Where the client polls the order: the route under the prefix it reached the API by."""
    return f"{base_path.rstrip('/')}/orders/{tracking_id}"


def accepted_response(
    accepted: Accepted,
    headers: dict[str, str] | None = None,
    *,
    html_form: bool = False,
    base_path: str = "",
) -> Response:
    """202 with the tracking id; in checkout mode 303 to the checkout (plain form) or 200 JSON.

    `base_path` is `api_base_path(event)`: without it `status_url` is relative to the API's root,
    which on the default endpoint (stage `/v1`) is not where the client can poll.
    """
    if accepted.redirect_url:
        if html_form:
            return Response(status_code=303, headers={**(headers or {}), "Location": accepted.redirect_url})
        return Response(
            status_code=200,
            content_type="application/json",
            headers=headers or {},
            body={
                "tracking_id": accepted.tracking_id,
                "duplicate": accepted.duplicate,
                "status_url": status_url(accepted.tracking_id, base_path),
                "redirect_url": accepted.redirect_url,
            },
        )
    body: dict[str, object] = {
        "tracking_id": accepted.tracking_id,
        "duplicate": accepted.duplicate,
        "status_url": status_url(accepted.tracking_id, base_path),
    }
    if accepted.status:  # taken and recorded, not sent: FAILED (with the reasons) or SKIPPED
        body |= {"status": accepted.status, "error": accepted.error}
    return Response(status_code=202, content_type="application/json", headers=headers or {}, body=body)


def error_response(exc: IntakeRejectedError) -> Response:
    return Response(
        status_code=exc.status, content_type="application/json", headers=dict(exc.headers), body=exc.body()
    )


def raw_body(body: str | None, is_base64_encoded: bool) -> bytes:
    """The request body exactly as sent: signatures are computed over these bytes."""
    import base64

    if body is None:
        return b""
    return base64.b64decode(body) if is_base64_encoded else body.encode("utf-8")
