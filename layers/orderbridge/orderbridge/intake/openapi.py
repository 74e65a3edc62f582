"""The intake's OpenAPI document, built from the resolver's real routes and the pydantic models.

Why not Powertools' `get_openapi_schema()` alone: it cannot describe handlers that return a
`Response` (it turns the return annotation into a schema and fails) and it only describes request
bodies it parses itself, while the intake must read raw bytes and verify signatures before any
parsing. So the paths and methods come from the resolver (a new route shows up by itself), each
operation's bodies and answers come from the models below, and a route's own `summary=`,
`description=` and `tags=` win when it sets them.

`python -m orderbridge.intake.openapi functions/intake/app.py` prints the document
(`make openapi` saves it as `openapi/intake.openapi.json`).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orderbridge import __version__
from orderbridge.models.order import MAX_LINES, MAX_QUANTITY, CanonicalOrder, Email
from orderbridge.models.outcome import ORDER_STATE_MEANING, OrderState, OutcomeStatus

OPENAPI_PATH = "/openapi.json"
REF = "#/components/schemas/{model}"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
UNDESCRIBED = "not described in orderbridge.intake.openapi yet"

# --- answers -----------------------------------------------------------------------------------


class FieldError(BaseModel):
    field: str = Field(description="The field as the sender named it (`email`, `items[0][quantity]`).")
    code: str
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code (see the README's error table).")
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every refusal: a 4xx (a 503 when a dependency is down) with this body."""

    error: ErrorDetail


TrackingId = Annotated[str, StringConstraints(pattern=r"^ob_[0-9a-f]{32}$")]


class AcceptedBody(BaseModel):
    tracking_id: TrackingId
    duplicate: bool = Field(description="True when this is a retry of an order already accepted.")
    status_url: str
    status: Literal["FAILED", "SKIPPED"] | None = Field(
        default=None,
        description="Webhooks only, when the signed order was taken but not sent: FAILED (content the "
        "pipeline cannot take; `error` has every field reason, the record is on the outcome table) or "
        "SKIPPED (a test or cancelled order).",
    )
    error: ErrorDetail | None = None


class CheckoutBody(AcceptedBody):
    redirect_url: str = Field(description="Checkout mode: where the buyer goes to pay.")


class IgnoredBody(BaseModel):
    ignored: Literal[True]


class DestinationStatus(BaseModel):
    destination: str
    status: OutcomeStatus
    provider_order_id: str | None
    provider_reference: str | None
    redirect_url: str | None
    error_code: str | None
    updated_at: datetime


class StatusBody(BaseModel):
    tracking_id: str
    status: OrderState = Field(
        description=" ".join(f"{state.value}: {meaning}." for state, meaning in ORDER_STATE_MEANING.items())
    )
    destinations: list[DestinationStatus]


# --- request bodies ----------------------------------------------------------------------------

Short = Annotated[str, StringConstraints(max_length=100)]
Line = Annotated[str, StringConstraints(max_length=255)]


class FormAddress(BaseModel):
    company: Line | None = None
    address1: Line | None = None
    address2: Line | None = None
    city: Short | None = None
    province: Short | None = None
    zip: Annotated[str, StringConstraints(max_length=20)] | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] | None = None


class FormItem(BaseModel):
    sku: Annotated[str, StringConstraints(max_length=64)] | None = None
    name: Line | None = None
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


class _FormCommon(BaseModel):
    email: Email
    first_name: Short | None = None
    last_name: Short | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    coupon: Short | None = None
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")] | None = None
    submission_id: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None, description="A per-page-load id: double submits become one order."
    )
    website: Annotated[str, StringConstraints(max_length=0)] | None = Field(
        default=None, description="Honeypot: keep it hidden and empty (a filled one is a 422)."
    )


class FormSubmission(_FormCommon):
    """A storefront form posted as JSON (`fetch`)."""

    address: FormAddress | None = None
    items: list[FormItem] = Field(min_length=1, max_length=MAX_LINES)


def _form_fields_model() -> type[BaseModel]:
    """The same form as a plain HTML form sends it: flat names with brackets."""
    fields: dict[str, Any] = {}
    for name, info in FormAddress.model_fields.items():
        fields[f"address_{name}"] = (info.annotation, Field(default=None, alias=f"address[{name}]"))
    for name, info in FormItem.model_fields.items():
        default = ... if info.is_required() else None
        fields[f"item0_{name}"] = (info.annotation, Field(default, alias=f"items[0][{name}]"))
    from pydantic import create_model

    return create_model(
        "FormFields",
        __base__=_FormCommon,
        __doc__="A storefront form posted by a plain HTML form (more lines: items[1][sku], ...).",
        **fields,
    )


FormFields = _form_fields_model()


class WebhookEvent(BaseModel):
    """`standard` scheme payload: a canonical order in a Standard Webhooks envelope."""

    type: Literal["order.created"]
    timestamp: str | None = None
    data: CanonicalOrder


class ShopifyLineItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    sku: str | None = None
    title: str | None = None
    quantity: int | None = None
    price: str | None = None


class ShopifyOrder(BaseModel):
    """`shopify` scheme payload: Shopify's REST Admin order object (the fields orderbridge reads)."""

    model_config = ConfigDict(extra="allow")
    id: int | None = None
    email: str | None = None
    currency: str | None = None
    line_items: list[ShopifyLineItem] = Field(default_factory=list)
    total_price: str | None = None


# --- operations --------------------------------------------------------------------------------

ERRORS = {
    400: "Malformed body (`MALFORMED_BODY`, `JSON_TOO_DEEP`).",
    401: "Webhook signature missing, invalid or expired.",
    403: "The form does not accept posts from that origin (`ORIGIN_NOT_ALLOWED`).",
    404: "Unknown form key, webhook source or tracking id.",
    409: "This order was already received with different content (`ORDER_CONFLICT`; `fields` names "
    "what differs); the first copy stands.",
    413: "Body over the size cap (`BODY_TOO_LARGE`).",
    415: "Unsupported content type (`UNSUPPORTED_MEDIA_TYPE`).",
    422: "Field errors (`VALIDATION_FAILED`), event type, honeypot.",
    429: "Too many posts (`RATE_LIMITED`); see `Retry-After`.",
    503: "Configuration, secrets, the queue or the outcome table unreachable (`SERVICE_UNAVAILABLE`); "
    "retrying is safe: the same order gets the same tracking id.",
}


def _json(model: type[BaseModel], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": {"$ref": REF.format(model=model.__name__)}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _errors(*codes: int) -> dict[str, Any]:
    out = {str(c): _json(ErrorBody, ERRORS[c]) for c in codes}
    if "429" in out:
        out["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return out


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _html_or_error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {**_html("")["content"], JSON: {"schema": {"$ref": REF.format(model="ErrorBody")}}},
    }


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _header(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


FORM_KEY = _path("form_key", {"type": "string", "pattern": r"^fk_[A-Za-z0-9]{8,64}$"}, "The form's key.")
# What the routes match: a path segment of other characters is no route at all (the usual 404 body).
TRACKING = {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,128}$"}
ORIGIN = _header("Origin", "The storefront page's origin; must be one the form allows.")
CORS = {
    "Access-Control-Allow-Origin": {"schema": {"type": "string"}},
    "Vary": {"schema": {"type": "string"}},
}

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/forms/{form_key}"): {
        "summary": "Submit a storefront order form",
        "tags": ["forms"],
        "parameters": [FORM_KEY, ORIGIN],
        "requestBody": {
            "required": True,
            "content": {
                JSON: {"schema": {"$ref": REF.format(model="FormSubmission")}},
                FORM: {"schema": {"$ref": REF.format(model="FormFields")}},
            },
        },
        "responses": {
            "202": _json(AcceptedBody, "Accepted: the order is queued.", CORS),
            "200": _json(CheckoutBody, "Checkout mode (JSON): the provider's checkout.", CORS),
            "303": {
                "description": "Checkout mode (plain HTML form): redirect to the provider's checkout.",
                "headers": {"Location": {"schema": {"type": "string"}, "required": True}},
            },
            **_errors(400, 403, 404, 409, 413, 415, 422, 429, 503),
        },
    },
    ("OPTIONS", "/forms/{form_key}"): {
        "summary": "CORS preflight for a form",
        "tags": ["forms"],
        "parameters": [FORM_KEY, ORIGIN],
        "responses": {
            "204": {"description": "The origin may post to this form.", "headers": CORS},
            "403": {"description": "The origin may not post to this form (no CORS headers)."},
            **_errors(503),
        },
    },
    ("POST", "/webhooks/{source}"): {
        "summary": "Receive a signed webhook",
        "description": "The signature is verified over the raw body before anything is parsed.",
        "tags": ["webhooks"],
        "parameters": [
            _path("source", {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"}, "Source."),
            _header("webhook-id", "standard scheme: the message id."),
            _header("webhook-timestamp", "standard scheme: unix seconds, within the tolerance."),
            _header("webhook-signature", "standard scheme: `v1,<base64 HMAC-SHA256>` (several allowed)."),
            _header("X-Shopify-Hmac-Sha256", "shopify scheme: base64 HMAC-SHA256 of the body."),
            _header("X-Shopify-Topic", "shopify scheme: only `orders/create` creates an order."),
            _header("Stripe-Signature", "stripe scheme: `t=<unix>,v1=<hex HMAC-SHA256 of t.body>`."),
        ],
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": {
                        "anyOf": [
                            {"$ref": REF.format(model="WebhookEvent")},
                            {"$ref": REF.format(model="ShopifyOrder")},
                        ]
                    }
                }
            },
        },
        "responses": {
            "202": _json(
                AcceptedBody,
                "Taken: the order is queued; or, signed but not an order the pipeline can take (or a "
                "test order), recorded on the outcome table with `status` FAILED (every reason in "
                "`error`) or SKIPPED. A signed delivery is never refused for its content.",
            ),
            "200": _json(IgnoredBody, "An event that creates no order (another topic or event type)."),
            **_errors(401, 404, 413, 503),
        },
    },
    ("GET", "/orders/{tracking_id}"): {
        "summary": "Poll an order's status",
        "description": "A tracking id is the capability to read that order and no other.",
        "tags": ["status"],
        "parameters": [_path("tracking_id", TRACKING, "From the 202 answer.")],
        "responses": {
            "200": _json(StatusBody, "The order's status at each destination."),
            **_errors(404, 503),
        },
    },
    # --- the storefront's own pages (orderbridge.storefront) -----------------------------------
    ("GET", "/forms/{form_key}"): {
        "summary": "The order form page",
        "tags": ["storefront"],
        "parameters": [FORM_KEY],
        "responses": {
            "200": _html("The form."),
            "404": _html_or_error("Unknown form key (page); a path no route matches (error body)."),
            **_errors(503),
        },
    },
    ("GET", "/forms/{form_key}/embed"): {
        "summary": "The snippet that embeds the form in a storefront page",
        "tags": ["storefront"],
        "parameters": [FORM_KEY],
        "responses": {"200": _html("The snippet."), **_errors(404, 503)},
    },
    ("POST", "/forms/{form_key}/submit"): {
        "summary": "The form page's post (HTML answers; JSON when the script asks for it)",
        "tags": ["storefront"],
        "parameters": [FORM_KEY, ORIGIN, _header("Accept", "`application/json` for JSON answers.")],
        "requestBody": {
            "required": True,
            "content": {
                FORM: {"schema": {"$ref": REF.format(model="FormFields")}},
                JSON: {"schema": {"$ref": REF.format(model="FormSubmission")}},
            },
        },
        "responses": {
            "202": _json(AcceptedBody, "Accepted (JSON).", CORS),
            "200": _json(CheckoutBody, "Checkout mode (JSON).", CORS),
            "303": {
                "description": "Accepted: to the confirmation page or the provider's checkout.",
                "headers": {"Location": {"schema": {"type": "string"}, "required": True}},
            },
            **{
                code: {**answer, "content": {**answer["content"], **_html("")["content"]}}
                for code, answer in _errors(400, 403, 404, 409, 413, 415, 422, 429, 503).items()
            },
        },
    },
    ("GET", "/forms/{form_key}/confirmation/{tracking_id}"): {
        "summary": "The confirmation page, polling the order's status",
        "tags": ["storefront"],
        "parameters": [FORM_KEY, _path("tracking_id", TRACKING, "Tracking id.")],
        "responses": {
            "200": _html("The confirmation."),
            "404": _html_or_error("No such order (page); a path no route matches (error body)."),
            **_errors(503),
        },
    },
    ("GET", "/forms/{form_key}/orders/{tracking_id}"): {
        "summary": "The status poll for this form's orders (with the form's CORS headers)",
        "tags": ["storefront"],
        "parameters": [
            FORM_KEY,
            ORIGIN,
            _path("tracking_id", TRACKING, "Tracking id."),
        ],
        "responses": {"200": _json(StatusBody, "The order's status."), **_errors(404, 503)},
    },
    ("GET", "/storefront/{asset}"): {
        "summary": "The form's script and stylesheet",
        "tags": ["storefront"],
        "parameters": [
            _path("asset", {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,64}$"}, "File name.")
        ],
        "responses": {
            "200": {
                "description": "The file.",
                "content": {
                    "text/javascript": {"schema": {"type": "string"}},
                    "text/css": {"schema": {"type": "string"}},
                },
            },
            **_errors(404),
        },
    },
    ("GET", OPENAPI_PATH): {
        "summary": "This document",
        "tags": ["meta"],
        "responses": {
            "200": {"description": "The OpenAPI document.", "content": {JSON: {"schema": {"type": "object"}}}}
        },
    },
}

MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody,
    AcceptedBody,
    CheckoutBody,
    IgnoredBody,
    StatusBody,
    FormSubmission,
    FormFields,
    WebhookEvent,
    ShopifyOrder,
)


def components() -> dict[str, Any]:
    """Every model's JSON Schema, with nested models lifted into `components.schemas`."""
    schemas: dict[str, Any] = {}
    for model in MODELS:
        schema = model.model_json_schema(ref_template=REF, by_alias=True)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return dict(sorted(schemas.items()))


def _undescribed(method: str, path: str) -> dict[str, Any]:
    params = [_path(name, {"type": "string"}, name) for name in re.findall(r"{(\w+)}", path)]
    return {"parameters": params, "responses": {"default": {"description": UNDESCRIBED}}}


def document(resolver: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route the resolver serves."""
    paths: dict[str, dict[str, Any]] = {}
    # Powertools keeps its routes in these two lists; Route.method and Route.openapi_path are public.
    for route in [*resolver._static_routes, *resolver._dynamic_routes]:
        if not route.include_in_schema:
            continue
        operation = dict(
            OPERATIONS.get((route.method, route.openapi_path))
            or _undescribed(route.method, route.openapi_path)
        )
        operation["operationId"] = route.func.__name__
        if route.summary:
            operation["summary"] = route.summary
        if route.description:
            operation["description"] = route.description
        if route.tags:
            operation["tags"] = list(route.tags)
        operation.setdefault(
            "summary", (route.func.__doc__ or f"{route.method} {route.openapi_path}").strip()
        )
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "orderbridge intake",
            "version": __version__,
            "description": "Storefront forms, signed webhooks and status polls. Every refusal is "
            "`{error: {code, message, fields}}` with a stable code.",
        },
        "paths": {p: dict(sorted(ops.items())) for p, ops in sorted(paths.items())},
        "components": {"schemas": components()},
    }


def undescribed_operations(doc: dict[str, Any]) -> list[str]:
    """Routes the document only knows by method and path (a new route needs an entry in OPERATIONS)."""
    return [
        f"{method.upper()} {path}"
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if op["responses"].get("default", {}).get("description") == UNDESCRIBED
    ]


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Print the document of `app` in a handler file (placeholder settings: importing calls nothing)."""
    import importlib.util
    import os
    import sys
    from pathlib import Path

    from orderbridge import constants

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "functions/intake/app.py")
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        constants.CONFIG_BUCKET_ENV: "placeholder",
        constants.OUTCOME_TABLE_ENV: "placeholder",
        constants.ORDER_QUEUE_URL_ENV: "https://sqs.us-east-1.amazonaws.com/123456789012/placeholder",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "placeholder",
    }.items():
        os.environ.setdefault(name, value)
    spec = importlib.util.spec_from_file_location("orderbridge_openapi_handler", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.stdout.write(dumps(document(module.app)))


if __name__ == "__main__":
    main()
