"""HTTP answers of the intake, shared by the Lambda function and anything else serving it."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from orderbridge.exceptions import IntakeRejectedError
from orderbridge.intake.service import Accepted

CORS_ALLOW_HEADERS = "Content-Type"


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


def accepted_response(
    accepted: Accepted, headers: dict[str, str] | None = None, *, html_form: bool = False
) -> Response:
    """202 with the tracking id; in checkout mode 303 to the checkout (plain form) or 200 JSON."""
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
                "status_url": f"/orders/{accepted.tracking_id}",
                "redirect_url": accepted.redirect_url,
            },
        )
    body: dict[str, object] = {
        "tracking_id": accepted.tracking_id,
        "duplicate": accepted.duplicate,
        "status_url": f"/orders/{accepted.tracking_id}",
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
