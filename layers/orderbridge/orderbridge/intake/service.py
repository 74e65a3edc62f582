"""The intake service: authenticate, parse, validate, deduplicate, record, enqueue.

Deduplication uses Powertools' idempotency utility keyed on what identifies an order at its
source (the source's order id, else the sender's event id or the form's submission id, else the
body's hash), so webhook retries and double-clicked forms return the first tracking id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from pydantic import ValidationError

from orderbridge.config import ConfigStore
from orderbridge.constants import METRICS_NAMESPACE_DEFAULT, METRICS_NAMESPACE_ENV
from orderbridge.credentials import CredentialStore
from orderbridge.exceptions import (
    ConfigurationError,
    CredentialsError,
    IntakeRejectedError,
    SignatureError,
)
from orderbridge.intake import mapping, signatures
from orderbridge.models.config import FormRateLimits, OrderbridgeConfig
from orderbridge.models.event import OrderEvent, new_tracking_id
from orderbridge.models.order import CanonicalOrder
from orderbridge.models.outcome import OutcomeStatus
from orderbridge.observability import mask_pii
from orderbridge.outcomes import OutcomeStore

if TYPE_CHECKING:  # the dispatcher is imported only when a checkout-mode form needs it
    from orderbridge.dispatch import Dispatcher
    from orderbridge.ratelimit import PostRateLimiter

logger = Logger(child=True)
# Namespace fixed at import, so metrics work whenever this module is first imported.
metrics = Metrics(namespace=os.environ.get(METRICS_NAMESPACE_ENV, METRICS_NAMESPACE_DEFAULT))

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MAX_JSON_DEPTH = 12  # the deepest legitimate payload (Shopify's order) nests about 6 levels
IDEMPOTENCY_EXPIRY_SECONDS = 72 * 3600  # longer than Shopify's 48 h of webhook retries


@dataclass(frozen=True)
class Accepted:
    tracking_id: str
    duplicate: bool = False
    redirect_url: str | None = None  # checkout mode: where the buyer goes to pay


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def field_errors(exc: ValidationError, rename: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """pydantic errors as `{field, code, message}`, with canonical paths renamed for forms."""
    out = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "<body>"
        for prefix, new in (rename or {}).items():
            if path == prefix or path.startswith(prefix + "."):
                path = new + path[len(prefix) :]
                break
        out.append({"field": path, "code": err["type"], "message": err["msg"]})
    return out


def _form_field_name(path: str) -> str:
    """buyer.email -> email, billing_address.city -> address[city], lines.0.sku -> items[0][sku]."""
    parts = path.split(".")
    if parts[0] == "buyer" and len(parts) > 1:
        return parts[1]
    if parts[0] in ("billing_address", "shipping_address") and len(parts) > 1:
        return parts[1] if parts[1] in ("first_name", "last_name", "phone") else f"address[{parts[1]}]"
    if parts[0] == "lines":
        return "items" + "".join(f"[{p}]" for p in parts[1:])
    return path


class IntakeService:
    """Everything the intake function does, independent of API Gateway."""

    def __init__(
        self,
        *,
        config: ConfigStore,
        outcomes: OutcomeStore,
        credentials: CredentialStore,
        sqs_client: Any,
        queue_url: str,
        idempotency_table: str,
        dynamodb_client: Any = None,
        webhook_tolerance: int = 300,
        max_body_bytes: int = 65536,
        dispatcher_factory: Callable[[], Dispatcher] | None = None,
        post_limiter: PostRateLimiter | None = None,
        secret_refresh_interval: float = 10.0,
    ) -> None:
        self.config = config
        self.outcomes = outcomes
        self.credentials = credentials
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.webhook_tolerance = webhook_tolerance
        self.max_body_bytes = max_body_bytes
        self._local = threading.local()
        self._dispatcher_factory = dispatcher_factory
        self._dispatcher: Dispatcher | None = None
        self.post_limiter = post_limiter
        self.secret_refresh_interval = secret_refresh_interval
        self._secret_refreshed: dict[str, float] = {}  # secret id -> monotonic time of the last re-read
        persistence = DynamoDBPersistenceLayer(table_name=idempotency_table, boto3_client=dynamodb_client)
        self.idempotency = IdempotencyConfig(
            event_key_jmespath="dedup_key", expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS
        )
        self._accept_once = idempotent_function(
            data_keyword_argument="submission",
            persistence_store=persistence,
            config=self.idempotency,
        )(self._accept)

    # --- ways in ---------------------------------------------------------------------------------

    def submit_form(
        self,
        *,
        form_key: str,
        content_type: str | None,
        body: bytes,
        origin: str | None,
        ip: str | None,
        user_agent: str | None,
    ) -> Accepted:
        cfg = self._config()
        form = cfg.forms.get(form_key)
        if form is None:
            raise IntakeRejectedError(404, "FORM_NOT_FOUND", "unknown form key")
        if origin and origin not in form.allowed_origins:
            raise IntakeRejectedError(
                403, "ORIGIN_NOT_ALLOWED", "this form does not accept posts from that origin"
            )
        self._check_rate(form_key, form.rate_limit, ip)
        self._check_size(body)
        media = _media_type(content_type)
        text = self._text(body)
        if media == JSON:
            fields = self._json(text)
            if not isinstance(fields, dict):
                raise IntakeRejectedError(400, "MALFORMED_BODY", "the form body must be a JSON object")
        elif media == FORM:
            try:
                fields = mapping.parse_urlencoded(text)
            except ValueError as exc:
                raise IntakeRejectedError(400, "MALFORMED_BODY", f"cannot parse the form: {exc}") from None
        else:
            raise IntakeRejectedError(415, "UNSUPPORTED_MEDIA_TYPE", f"send {JSON} or {FORM}")
        if fields.get("website"):  # honeypot: a field people never see and bots fill in
            raise IntakeRejectedError(422, "SUBMISSION_REJECTED", "the submission was rejected")
        raw = mapping.from_form(fields, ip=ip, user_agent=user_agent)
        order = self._validate(raw, rename=_form_field_name)
        submission_id = str(fields.get("submission_id") or "")[:128]
        dedup = (
            f"form:{form_key}:{submission_id}" if submission_id else f"form:{form_key}:body:{_digest(body)}"
        )
        delay = int(form.checkout_timeout_seconds) + 2 if form.mode == "checkout" else 0
        accepted = self._accept_or_duplicate(dedup, form.source, form.route, order, delay)
        if form.mode == "checkout":
            return self._checkout(accepted, form.source, form.route, order, form.checkout_timeout_seconds)
        return accepted

    def receive_webhook(self, *, source: str, headers: Mapping[str, str], body: bytes) -> Accepted | None:
        """Verify, map and accept; None when the event is a topic this source does not create orders for."""
        cfg = self._config()
        hook = cfg.webhooks.get(source)
        if hook is None:
            raise IntakeRejectedError(404, "SOURCE_NOT_FOUND", "unknown webhook source")
        self._check_size(body)
        try:
            event_id = self._verify(hook, headers, body)
        except SignatureError as exc:
            logger.warning("webhook signature rejected", extra={"source": source, "error_code": exc.code})
            raise IntakeRejectedError(401, exc.code, exc.message) from None
        if _media_type(_header(headers, "content-type")) != JSON:
            raise IntakeRejectedError(415, "UNSUPPORTED_MEDIA_TYPE", f"webhooks must be {JSON}")
        payload = self._json(self._text(body))
        if hook.scheme == "stripe" and isinstance(payload, dict) and isinstance(payload.get("id"), str):
            event_id = payload["id"][:128]  # Stripe-style events carry their id in the signed body
        if hook.payload == "shopify":
            topic = _header(headers, "x-shopify-topic")
            if topic and topic != "orders/create":
                logger.info("webhook topic ignored", extra={"source": source, "topic": topic})
                return None
            raw = mapping.from_shopify(payload)
        else:
            raw = mapping.from_canonical_event(payload)
        order = self._validate(raw)
        if order.external_order_id:
            dedup = f"order:{source}:{order.external_order_id}"
        elif event_id:
            dedup = f"event:{source}:{event_id}"
        else:
            dedup = f"body:{source}:{_digest(body)}"
        return self._accept_or_duplicate(dedup, source, hook.route, order)

    def status(self, tracking_id: str, *, source: str | None = None) -> dict[str, Any] | None:
        """What a storefront polling for its order may see: that order only (and, given a
        `source`, only if the order came in through it)."""
        outcomes = self.outcomes.get(tracking_id)
        if not outcomes or (source is not None and any(o.source != source for o in outcomes)):
            return None
        statuses = {o.status for o in outcomes}
        if statuses == {OutcomeStatus.SUCCEEDED}:
            overall = "SUCCEEDED"
        elif statuses & {OutcomeStatus.FAILED_PERMANENT, OutcomeStatus.DEAD_LETTERED}:
            overall = "FAILED"
        else:
            overall = "PENDING"
        return {
            "tracking_id": tracking_id,
            "status": overall,
            "destinations": [o.public_view() for o in outcomes],
        }

    def allowed_origin(self, form_key: str, origin: str | None) -> str | None:
        """The origin to echo in CORS headers, if this form accepts it."""
        if not origin:
            return None
        try:
            form = self._config().forms.get(form_key)
        except IntakeRejectedError:
            return None
        return origin if form is not None and origin in form.allowed_origins else None

    # --- the one place an order is accepted ------------------------------------------------------

    def _accept_or_duplicate(
        self, dedup: str, source: str, route: str, order: CanonicalOrder, queue_delay: int = 0
    ) -> Accepted:
        submission = {
            "dedup_key": dedup,
            "source": source,
            "route": route,
            "order": order.model_dump(mode="json", exclude_none=True),
            "queue_delay": queue_delay,
        }
        self._local.created = None
        try:
            result = self._accept_once(submission=submission)
        except IdempotencyAlreadyInProgressError:
            raise IntakeRejectedError(
                409,
                "DUPLICATE_IN_PROGRESS",
                "the same order is being accepted right now; retry shortly",
            ) from None
        created = getattr(self._local, "created", None)
        self._local.created = None
        return Accepted(tracking_id=result["tracking_id"], duplicate=result["tracking_id"] != created)

    def _accept(self, submission: dict[str, Any]) -> dict[str, Any]:
        tracking_id = new_tracking_id()
        event = OrderEvent(
            tracking_id=tracking_id,
            source=submission["source"],
            route=submission["route"],
            order=CanonicalOrder.model_validate(submission["order"]),
        )
        cfg = self._config()
        route = cfg.routes[event.route]
        self.outcomes.record_received(
            tracking_id=tracking_id,
            destinations=[
                (d.destination, cfg.destinations[d.destination].provider) for d in route.destinations
            ],
            source=event.source,
            route=event.route,
            external_order_id=event.order.external_order_id,
        )
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=event.model_dump_json(exclude_none=True),
            # checkout mode: the queued copy is the safety net, so it waits out the inline attempt
            DelaySeconds=min(900, int(submission.get("queue_delay", 0))),
        )
        logger.info("order accepted", extra={"tracking_id": tracking_id, "source": event.source})
        metrics.add_metric(name="OrdersAccepted", unit=MetricUnit.Count, value=1)
        self._local.created = tracking_id
        return {"tracking_id": tracking_id}

    def _checkout(
        self, accepted: Accepted, source: str, route: str, order: CanonicalOrder, timeout: float
    ) -> Accepted:
        """Create the order while the buyer waits; the queued copy is the safety net."""
        if not accepted.duplicate and self._dispatcher_factory is not None:
            if self._dispatcher is None:
                self._dispatcher = self._dispatcher_factory()
            event = OrderEvent(tracking_id=accepted.tracking_id, source=source, route=route, order=order)
            try:
                self._dispatcher.deliver_now(event)
            except Exception:  # the queued path will deliver it
                logger.exception("checkout delivery failed; the queue will retry")
        deadline = time.monotonic() + timeout
        while True:
            outcomes = self.outcomes.get(accepted.tracking_id)
            redirect = next((o.redirect_url for o in outcomes if o.redirect_url), None)
            if redirect or (outcomes and all(o.status.is_final for o in outcomes)):
                return Accepted(accepted.tracking_id, accepted.duplicate, redirect)
            if any(o.status is OutcomeStatus.FAILED_RETRYABLE for o in outcomes):
                return accepted  # the provider failed for now: the queued path takes over at once
            if time.monotonic() >= deadline:
                return accepted
            time.sleep(0.2)  # another worker holds the delivery: its answer may come in time

    # --- helpers ---------------------------------------------------------------------------------

    def _config(self) -> OrderbridgeConfig:
        try:
            return self.config.load()
        except ConfigurationError:
            logger.exception("configuration unavailable")
            raise

    def _verify(self, hook: Any, headers: Mapping[str, str], body: bytes) -> str:
        """Check the signature; on a mismatch re-read the secret once, so a rotation counts at once.

        The re-read is spaced by `secret_refresh_interval` per secret, so forged signatures cannot
        turn into a flood of Secrets Manager calls.
        """
        secrets = self._signing_secrets(hook.secret_id)
        try:
            return self._verify_with(hook, headers, body, secrets)
        except SignatureError as exc:
            last = self._secret_refreshed.get(hook.secret_id)
            now = time.monotonic()
            if exc.code != "SIGNATURE_INVALID" or (
                last is not None and now - last < self.secret_refresh_interval
            ):
                raise
            self._secret_refreshed[hook.secret_id] = now
            fresh = self._signing_secrets(hook.secret_id, refresh=True)
            if fresh == secrets:
                raise
            logger.info("signing secret re-read after a mismatch", extra={"secret_id": hook.secret_id})
            return self._verify_with(hook, headers, body, fresh)

    def _verify_with(self, hook: Any, headers: Mapping[str, str], body: bytes, secrets: list[str]) -> str:
        if hook.scheme == "standard":
            return signatures.verify_standard(body, headers, secrets, tolerance=self.webhook_tolerance)
        if hook.scheme == "stripe":
            return signatures.verify_stripe(
                body,
                headers,
                secrets,
                tolerance=self.webhook_tolerance,
                header=hook.signature_header or signatures.STRIPE_HEADER_DEFAULT,
            )
        return signatures.verify_shopify(body, headers, secrets)

    def _check_rate(self, form_key: str, limits: FormRateLimits, ip: str | None) -> None:
        if self.post_limiter is None:
            return
        wait = self.post_limiter.retry_after(
            form_key=form_key, ip=ip, per_client=limits.per_client, per_form=limits.per_form
        )
        if wait is not None:
            metrics.add_metric(name="FormPostsRateLimited", unit=MetricUnit.Count, value=1)
            raise IntakeRejectedError(
                429,
                "RATE_LIMITED",
                f"too many posts to this form; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    def _signing_secrets(self, secret_id: str, *, refresh: bool = False) -> list[str]:
        try:
            value = self.credentials.get(secret_id, refresh=refresh)
        except CredentialsError:
            logger.exception("webhook signing secret unavailable")
            raise
        secrets = value.get("secrets") or [value.get("secret") or value.get("token")]
        return [str(s) for s in secrets if s]

    def _check_size(self, body: bytes) -> None:
        if len(body) > self.max_body_bytes:
            raise IntakeRejectedError(413, "BODY_TOO_LARGE", f"the body exceeds {self.max_body_bytes} bytes")

    @staticmethod
    def _text(body: bytes) -> str:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise IntakeRejectedError(400, "MALFORMED_BODY", "the body is not UTF-8") from None

    @staticmethod
    def _json(text: str) -> Any:
        try:
            value = json.loads(text)
        except ValueError:
            raise IntakeRejectedError(400, "MALFORMED_BODY", "the body is not valid JSON") from None
        except RecursionError:  # thousands of nested brackets fit in the size cap
            raise IntakeRejectedError(400, "JSON_TOO_DEEP", f"nesting deeper than {MAX_JSON_DEPTH}") from None
        if _depth(value) > MAX_JSON_DEPTH:
            raise IntakeRejectedError(400, "JSON_TOO_DEEP", f"nesting deeper than {MAX_JSON_DEPTH}")
        return value

    @staticmethod
    def _validate(raw: dict[str, Any], rename: Any = None) -> CanonicalOrder:
        try:
            return CanonicalOrder.model_validate(raw)
        except ValidationError as exc:
            fields = field_errors(exc)
            if logger.isEnabledFor(logging.DEBUG):  # masking copies the whole order: only when logged
                logger.debug("order failed validation", extra={"fields": fields, "order": mask_pii(raw)})
            if rename is not None:
                for f in fields:
                    f["field"] = rename(f["field"])
            raise IntakeRejectedError(
                422, "VALIDATION_FAILED", "the order has invalid fields", fields
            ) from None


def _depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iterative: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict):
            stack += [(v, level + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, level + 1) for v in node]
    return deepest


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None
