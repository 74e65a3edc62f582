"""The intake service: authenticate, parse, validate, identify, enqueue, record.

Every accepted order's tracking id is derived from its identity at its origin (the shop and the
shop's order id, else the sender's event id, else the form's submission id, else the body: see
`orderbridge.identity`), so a webhook retry, a double-clicked form, a second way in of the same
shop or a re-run after any crash names the same order, for as long as its outcome record exists.
The outcome table is the ledger: an order it already holds is a duplicate (or, with different
content from the same source, a conflict). The write order leaves nothing behind that nobody acts
on: the event is queued first and the RECEIVED records written after, so a crash in between leaves
a queued event (whose dispatcher writes the records), never a record without an event.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from orderbridge.config import ConfigStore
from orderbridge.constants import METRICS_NAMESPACE_DEFAULT, METRICS_NAMESPACE_ENV
from orderbridge.credentials import CredentialStore
from orderbridge.exceptions import (
    AmbiguousFormFieldError,
    ConfigurationError,
    CredentialsError,
    IntakeRejectedError,
    IntakeUnavailableError,
    OrderConflictError,
    RequestRejectedError,
    SignatureError,
)
from orderbridge.identity import OrderIdentity, TrackingIds, differing_fields, effective_shop
from orderbridge.intake import mapping, pricing, signatures
from orderbridge.models.config import FormRateLimits, OrderbridgeConfig, normalize_origin
from orderbridge.models.event import OrderEvent
from orderbridge.models.order import CanonicalOrder
from orderbridge.models.outcome import Outcome, OutcomeStatus, order_state
from orderbridge.observability import mask_pii
from orderbridge.outcomes import OutcomeStore
from orderbridge.payloads import EventCodec
from orderbridge.settings import IntakeEnvironment
from orderbridge.settings import default as _setting

if TYPE_CHECKING:  # the dispatcher is imported only when a checkout-mode form needs it
    from orderbridge.dispatch import Dispatcher
    from orderbridge.ratelimit import PostRateLimiter

logger = Logger(child=True)
# Namespace fixed at import, so metrics work whenever this module is first imported.
metrics = Metrics(namespace=os.environ.get(METRICS_NAMESPACE_ENV, METRICS_NAMESPACE_DEFAULT))

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MAX_JSON_DEPTH = 12  # the deepest legitimate payload (Shopify's order) nests about 6 levels
MAX_FORM_BYTES = 64 * 1024  # a public form (unsigned): a person's order, kept small
# Fields of a copy that may differ without it being a different order (who posted it, from where).
_VOLATILE = {"buyer": {"ip_address", "user_agent"}}


@dataclass(frozen=True)
class Accepted:
    tracking_id: str
    duplicate: bool = False
    redirect_url: str | None = None  # checkout mode: where the buyer goes to pay
    # A signed delivery taken but not sent: recorded as FAILED (content the pipeline cannot take,
    # with every field reason) or SKIPPED (a test order); `error` carries the code and reasons.
    status: str | None = None
    error: dict[str, Any] | None = None


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
        tracking_ids: TrackingIds,
        codec: EventCodec | None = None,
        requeue_received_after: float = 300.0,
        webhook_tolerance: int = 300,
        max_body_bytes: int = _setting(IntakeEnvironment, "max_body_bytes"),
        max_signed_body_bytes: int = _setting(IntakeEnvironment, "max_signed_body_bytes"),
        max_form_bytes: int = MAX_FORM_BYTES,
        dispatcher_factory: Callable[[], Dispatcher] | None = None,
        post_limiter: PostRateLimiter | None = None,
        secret_refresh_interval: float = 10.0,
    ) -> None:
        self.config = config
        self.outcomes = outcomes
        self.credentials = credentials
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.ids = tracking_ids
        self.codec = codec or EventCodec()
        self.requeue_received_after = requeue_received_after
        self.webhook_tolerance = webhook_tolerance
        # Webhooks: a body over max_body_bytes is taken only once its signature holds (a real
        # order may have hundreds of lines); a signed one over max_signed_body_bytes (the memory
        # cap) is recorded FAILED / BODY_TOO_LARGE unparsed. Forms are unsigned: max_form_bytes.
        self.max_body_bytes = max_body_bytes
        self.max_signed_body_bytes = max(max_signed_body_bytes, max_body_bytes)
        self.max_form_bytes = max_form_bytes
        self._dispatcher_factory = dispatcher_factory
        self._dispatcher: Dispatcher | None = None
        self.post_limiter = post_limiter
        self.secret_refresh_interval = secret_refresh_interval
        self._secret_refreshed: dict[str, float] = {}  # secret id -> monotonic time of the last re-read

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
        if origin and normalize_origin(origin) not in form.allowed_origins:
            raise IntakeRejectedError(
                403, "ORIGIN_NOT_ALLOWED", "this form does not accept posts from that origin"
            )
        self._check_rate(form_key, form.rate_limit, ip)
        self._check_size(body, self.max_form_bytes, form_key=form_key)
        media = _media_type(content_type)
        text = self._text(body)
        if media == JSON:
            fields = self._json(text)
            if not isinstance(fields, dict):
                raise IntakeRejectedError(400, "MALFORMED_BODY", "the form body must be a JSON object")
            if (twice := mapping.duplicate_json_key(text)) is not None:
                raise _ambiguous(AmbiguousFormFieldError(twice, f"{twice!r} is sent more than once"))
        elif media == FORM:
            try:
                fields = mapping.parse_urlencoded(text)
            except AmbiguousFormFieldError as exc:
                raise _ambiguous(exc) from None
            except ValueError as exc:
                raise IntakeRejectedError(400, "MALFORMED_BODY", f"cannot parse the form: {exc}") from None
        else:
            raise IntakeRejectedError(415, "UNSUPPORTED_MEDIA_TYPE", f"send {JSON} or {FORM}")
        if fields.get("website"):  # honeypot: a field people never see and bots fill in
            raise IntakeRejectedError(422, "SUBMISSION_REJECTED", "the submission was rejected")
        raw = mapping.from_form(fields, ip=ip, user_agent=user_agent)
        names = mapping.FormFieldNames.of(fields, urlencoded=media == FORM)  # errors in the sender's terms
        # prices and currency come from the route's catalog, never from the buyer
        raw = pricing.price_form_order(raw, cfg.routes[form.route].items, names)
        order = self._validate(raw, rename=names)
        self._check_destinations(cfg, form.route, order, names)
        submission_id = str(fields.get("submission_id") or "")[:128]
        identity = OrderIdentity.of(
            shop=effective_shop(form, form_key) or form.source,
            source=form_key,
            external_order_id=order.external_order_id,
            submission_id=submission_id,
            form_key=form_key,
            body=body,
        )
        delay = int(form.checkout_timeout_seconds) + 2 if form.mode == "checkout" else 0
        try:
            accepted = self._accept_or_duplicate(
                identity, form.source, form.route, order, delay, shop=form.shop, conflict_is_error=True
            )
        except OrderConflictError as exc:  # a person is there: tell them, keep the first order
            raise IntakeRejectedError(
                409,
                "ORDER_CONFLICT",
                "this submission was already received with different content; reload the page "
                "to place a new order",
                [
                    {
                        "field": names(f),
                        "code": "differs",
                        "message": "differs from the first copy",
                    }
                    for f in exc.fields
                ],
            ) from None
        if form.mode == "checkout":
            return self._checkout(accepted, form.source, form.route, order, form.checkout_timeout_seconds)
        return accepted

    def receive_webhook(self, *, source: str, headers: Mapping[str, str], body: bytes) -> Accepted | None:
        """Verify, map and accept; None when the delivery creates nothing (the platform's activation
        ping, a topic or event type this source does not create orders for, a draft).

        The source's preset (`orderbridge.sources`, by its `scheme`) checks the signature, handles
        topics, maps the payload and names the shop; everything else is the same for every source.

        Size: a body over `max_body_bytes` is not refused before its signature is checked (over
        the raw bytes, cheap). Unsigned or forged, it is 413 BODY_TOO_LARGE; signed, it is taken
        like any other, and one over `max_signed_body_bytes` (never parsed: the memory cap) is
        recorded FAILED with BODY_TOO_LARGE and answered 202. Every 413 is logged at WARNING.
        """
        from orderbridge.sources import source_for

        cfg = self._config()
        hook = cfg.webhooks.get(source)
        if hook is None:
            raise IntakeRejectedError(404, "SOURCE_NOT_FOUND", "unknown webhook source")
        preset = source_for(hook)
        size = len(body)
        unsigned_ok = size <= self.max_body_bytes  # what may be looked at before a signature holds
        if unsigned_ok and preset.handshake(headers, body):  # creates nothing: before any signature
            logger.info("webhook activation ping answered", extra={"source": source})
            return None
        try:
            event_id = self._verify(hook, preset, headers, body)
        except SignatureError as exc:
            if not unsigned_ok:
                self._too_large(size, self.max_body_bytes, source=source, error_code=exc.code)
            logger.warning(
                "webhook signature rejected",
                extra={"source": source, "error_code": exc.code, "body_bytes": size},
            )
            raise IntakeRejectedError(401, exc.code, exc.message) from None
        # From here the signature holds: the sender cannot fix its payload, and a 4xx would only
        # make it retry into the void. Whatever cannot be taken is recorded as a visible failure
        # with every reason, and answered 2xx.
        route = hook.route
        shop = preset.shop(headers, source)
        if size > self.max_signed_body_bytes:  # authentic, but not parsed: the memory cap
            identity = OrderIdentity.of(shop=shop, source=source, event_id=event_id, body=body)
            too_large = IntakeRejectedError(
                413,
                "BODY_TOO_LARGE",
                f"the signed body exceeds {self.max_signed_body_bytes} bytes (MAX_SIGNED_BODY_BYTES)",
                [{"field": "<body>", "code": "too_large", "message": f"{size} bytes, not parsed"}],
            )
            return self._record_refused(identity, source, None, too_large)
        if not unsigned_ok:
            logger.info(
                "signed webhook over MAX_BODY_BYTES taken",
                extra={"source": source, "body_bytes": size, "limit_bytes": self.max_body_bytes},
            )
        try:
            if _media_type(_header(headers, "content-type")) != JSON:
                raise IntakeRejectedError(415, "UNSUPPORTED_MEDIA_TYPE", f"webhooks must be {JSON}")
            payload = self._json(self._text(body))
            event_id = preset.event_id(payload, event_id)
            raw = preset.order(headers, payload)
            if raw is None:
                logger.info("webhook delivery ignored", extra={"source": source})
                return None
        except IntakeRejectedError as exc:
            identity = OrderIdentity.of(shop=shop, source=source, event_id=event_id, body=body)
            return self._record_refused(identity, source, None, exc)
        ext = raw.get("external_order_id") if isinstance(raw.get("external_order_id"), str) else None
        identity = OrderIdentity.of(
            shop=shop, source=source, external_order_id=ext, event_id=event_id, body=body
        )
        try:
            order = self._validate(raw)
        except IntakeRejectedError as exc:
            return self._record_refused(identity, source, ext, exc)
        skip = preset.skip_reason(payload)
        if order.test:  # the source's test-order setting decides first (a test notification is
            if hook.test_orders == "skip":  # also cancelled: it is recorded as the test it is)
                reason = "the source marked it a test order (test_orders: skip)"
                skip = ("TEST_ORDER", reason + (f"; also: {skip[1]}" if skip else ""))
            elif hook.test_route:
                route = hook.test_route
        if skip:
            return self._record_skipped(identity, source, order, *skip)
        event_shop = hook.shop or (shop if shop != source else None)
        return self._accept_or_duplicate(identity, source, route, order, shop=event_shop)

    def _check_destinations(
        self, cfg: OrderbridgeConfig, route: str, order: CanonicalOrder, names: Callable[[str], str]
    ) -> None:
        """Forms: a person is there, so what a destination's provider would refuse (a zip where
        BigCommerce needs one, a currency a store does not take) is a 422 now, not a failure after
        the buyer left. Each adapter's own rules decide; nothing is sent. A refusal names the
        field its adapter gives (`RequestRejectedError.field`) by `names`, else `order`."""
        from orderbridge.providers.base import Delivery  # only form posts pay for the adapters
        from orderbridge.providers.registry import get_provider_class

        problems = []
        for rd in cfg.routes[route].destinations:
            destination = cfg.destinations[rd.destination]
            delivery = Delivery(
                tracking_id="ob_" + "0" * 32,
                destination_id=rd.destination,
                destination=destination,
                order=order,
                source="form",
                catalog=rd.catalog,
            )
            try:
                get_provider_class(destination.provider)(destination=destination).build_create(delivery)
            except RequestRejectedError as exc:
                field = names(exc.field) if exc.field else "order"
                problems.append({"field": field, "code": exc.code, "message": exc.message})
            except Exception:  # not the buyer's problem: the dispatcher records it if it recurs
                logger.exception(
                    "form check against a destination failed", extra={"destination": rd.destination}
                )
        if problems:
            raise IntakeRejectedError(
                422, "VALIDATION_FAILED", "the shop cannot take this order as it is", problems
            )

    def _record_refused(
        self, identity: OrderIdentity, source: str, ext: str | None, exc: IntakeRejectedError
    ) -> Accepted:
        tracking_id = self._tracking_id(identity)
        reasons = "; ".join(f"{f['field']}: {f['message']}" for f in exc.fields) or exc.message
        logger.warning(
            "signed order cannot be taken; recorded as failed",
            extra={
                "tracking_id": tracking_id,
                "source": source,
                "error_code": exc.code,
                "fields": exc.fields,
            },
        )
        metrics.add_metric(name="OrdersRefusedRecorded", unit=MetricUnit.Count, value=1)
        self._write(
            lambda: self.outcomes.record_rejected(
                tracking_id=tracking_id,
                destination="-",
                source=source,
                error_code=exc.code,
                message=reasons,
                external_order_id=ext,
            )
        )
        error = {"code": exc.code, "message": exc.message, "fields": exc.fields}
        return Accepted(tracking_id=tracking_id, status="FAILED", error=error)

    def _record_skipped(
        self, identity: OrderIdentity, source: str, order: CanonicalOrder, code: str, reason: str
    ) -> Accepted:
        tracking_id = self._tracking_id(identity)
        logger.info("order skipped", extra={"tracking_id": tracking_id, "source": source, "reason": code})
        metrics.add_metric(name="OrdersSkipped", unit=MetricUnit.Count, value=1)
        self._write(
            lambda: self.outcomes.record_skipped(
                tracking_id=tracking_id,
                source=source,
                external_order_id=order.external_order_id,
                code=code,
                reason=reason,
            )
        )
        return Accepted(tracking_id=tracking_id, status="SKIPPED", error={"code": code, "message": reason})

    def _tracking_id(self, identity: OrderIdentity) -> str:
        try:
            return self.ids.tracking_id(identity)
        except CredentialsError as exc:
            raise IntakeUnavailableError("the tracking id key cannot be read") from exc

    @staticmethod
    def _write(write: Callable[[], Any]) -> None:
        try:
            write()
        except Exception as exc:  # the sender retries: the same id, the same record
            raise IntakeUnavailableError("the outcome table cannot be written") from exc

    def status(self, tracking_id: str, *, source: str | None = None) -> dict[str, Any] | None:
        """What a storefront polling for its order may see: that order only (and, given a
        `source`, only if the order came in through it)."""
        outcomes = self.outcomes.get(tracking_id)
        if not outcomes or (source is not None and any(o.source != source for o in outcomes)):
            return None
        return {
            "tracking_id": tracking_id,
            "status": order_state(outcomes).value,
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
        return origin if form is not None and normalize_origin(origin) in form.allowed_origins else None

    # --- the one place an order is accepted ------------------------------------------------------

    def _accept_or_duplicate(
        self,
        identity: OrderIdentity,
        source: str,
        route: str,
        order: CanonicalOrder,
        queue_delay: int = 0,
        *,
        shop: str | None = None,
        conflict_is_error: bool = False,
    ) -> Accepted:
        """Queue a new order, or recognise one already taken (for as long as its record exists).

        Raises OrderConflictError for a copy from the same source with different content when
        `conflict_is_error` (forms: a person can act on it); otherwise the first copy stands and
        the conflict is logged and noted in the record's history. IntakeUnavailableError when the
        queue or the outcome table cannot be read or written (the sender retries: same id).
        """
        tracking_id = self._tracking_id(identity)
        try:
            digests = self.ids.digests(order.model_dump(mode="json", exclude_none=True, exclude=_VOLATILE))
        except CredentialsError as exc:
            raise IntakeUnavailableError("the tracking id key cannot be read") from exc
        event = OrderEvent(tracking_id=tracking_id, source=source, shop=shop, route=route, order=order)
        try:
            known = self.outcomes.get(tracking_id)
        except Exception as exc:
            raise IntakeUnavailableError("the outcome table cannot be read") from exc
        if known:
            self._check_conflict(tracking_id, known, source, digests, conflict_is_error)
            self._requeue_if_stalled(event, known)
            return Accepted(tracking_id=tracking_id, duplicate=True)
        self._enqueue(event, queue_delay)
        cfg = self._config()
        try:
            created = self.outcomes.record_received(
                tracking_id=tracking_id,
                destinations=[
                    (d.destination, cfg.destinations[d.destination].provider)
                    for d in cfg.routes[route].destinations
                ],
                source=source,
                route=route,
                external_order_id=order.external_order_id,
                content_digests=digests,
            )
        except Exception:  # queued already: the dispatcher writes the record when it claims the order
            logger.warning(
                "RECEIVED record not written; the order is queued", extra={"tracking_id": tracking_id}
            )
            created = True
        if created:
            logger.info("order accepted", extra={"tracking_id": tracking_id, "source": source})
            metrics.add_metric(name="OrdersAccepted", unit=MetricUnit.Count, value=1)
        return Accepted(tracking_id=tracking_id, duplicate=not created)

    def _enqueue(self, event: OrderEvent, delay: int = 0) -> None:
        try:
            self.sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=self.codec.encode(event),  # an event over SQS's limit goes by way of S3
                # checkout mode: the queued copy is the safety net, so it waits out the inline attempt
                DelaySeconds=min(900, int(delay)),
            )
        except Exception as exc:
            raise IntakeUnavailableError("the order queue cannot be written") from exc

    def _check_conflict(
        self,
        tracking_id: str,
        known: list[Outcome],
        source: str,
        digests: dict[str, str],
        conflict_is_error: bool,
    ) -> None:
        """Same identity and source, different content: a conflict, never a silent duplicate.

        Another source of the same shop (a feed import of a webhook's order) maps the order its
        own way, so only copies from the same source are compared.
        """
        first = next((o for o in known if o.source == source and o.content_digests), None)
        differ = differing_fields(first.content_digests, digests) if first else []
        if not differ:
            return
        metrics.add_metric(name="OrderConflicts", unit=MetricUnit.Count, value=1)
        logger.warning(
            "order received again with different content; the first copy stands",
            extra={"tracking_id": tracking_id, "source": source, "fields": differ},
        )
        if conflict_is_error:
            raise OrderConflictError(tracking_id, differ)
        with contextlib.suppress(Exception):  # a note only: the answer does not depend on it
            for outcome in known:
                self.outcomes.add_note(
                    tracking_id=tracking_id,
                    destination=outcome.destination,
                    error_code="ORDER_CONFLICT",
                    note=f"received again from {source} with different {', '.join(differ)}; not sent",
                )

    def _requeue_if_stalled(self, event: OrderEvent, known: list[Outcome]) -> None:
        """A redelivery of an order no dispatcher has started for a while: queue it again.

        Its first queued copy may be lost (a crash, a purge); a second copy is harmless, as the
        dispatcher's claim lets only one of them reach the provider.
        """
        if not all(o.status is OutcomeStatus.RECEIVED for o in known):
            return
        age = (datetime.now(UTC) - max(o.updated_at for o in known)).total_seconds()
        if age >= self.requeue_received_after:
            logger.info("order re-queued: no dispatcher started it", extra={"tracking_id": event.tracking_id})
            self._enqueue(event)

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

    def _verify(self, hook: Any, preset: Any, headers: Mapping[str, str], body: bytes) -> str:
        """Check the signature; on a mismatch re-read the secret once, so a rotation counts at once.

        The re-read is spaced by `secret_refresh_interval` per secret, so forged signatures cannot
        turn into a flood of Secrets Manager calls. A secret that cannot be decoded is our
        configuration error: logged at ERROR naming the secret, answered 503 (never 401).
        """
        secrets = self._signing_secrets(hook.secret_id)
        try:
            return self._verify_with(hook, preset, headers, body, secrets)
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
            return self._verify_with(hook, preset, headers, body, fresh)

    def _verify_with(
        self, hook: Any, preset: Any, headers: Mapping[str, str], body: bytes, secrets: list[str]
    ) -> str:
        try:
            return preset.verify(body, headers, secrets, tolerance=self.webhook_tolerance)
        except signatures.SecretFormatError as exc:
            logger.error(
                "webhook signing secret cannot be used; fix the secret",
                extra={"secret_id": hook.secret_id, "reason": str(exc)},
            )
            raise ConfigurationError(f"signing secret {hook.secret_id!r}: {exc}") from None

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
        return signatures.signing_keys(value)

    def _check_size(self, body: bytes, limit: int, **where: str) -> None:
        """413 for a body over `limit` bytes; `where` names the way in (`form_key=`, `source=`)."""
        if len(body) > limit:
            self._too_large(len(body), limit, **where)

    @staticmethod
    def _too_large(size: int, limit: int, **where: str) -> NoReturn:
        """Raise 413 BODY_TOO_LARGE, logged at WARNING with the way in and the size in bytes (never
        the content): a refusal nobody sees is an order lost without trace."""
        logger.warning("body too large; refused", extra={**where, "body_bytes": size, "limit_bytes": limit})
        metrics.add_metric(name="BodiesTooLarge", unit=MetricUnit.Count, value=1)
        raise IntakeRejectedError(413, "BODY_TOO_LARGE", f"the body exceeds {limit} bytes")

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
                # the messages may repeat what the buyer typed: masked like the order
                logger.debug(
                    "order failed validation", extra={"fields": mask_pii(fields), "order": mask_pii(raw)}
                )
            if rename is not None:  # a form's address is both addresses: one error per form field
                for f in fields:
                    f["field"] = rename(f["field"])
                fields = list({(f["field"], f["code"], f["message"]): f for f in fields}.values())
            raise IntakeRejectedError(
                422, "VALIDATION_FAILED", "the order has invalid fields", fields
            ) from None


def _depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iterative: no recursion to exhaust).

    One iterator per level on the stack, not one entry per node: a signed body of millions of
    small values (up to MAX_SIGNED_BODY_BYTES) costs no second copy of itself to check.
    """
    deepest, stack = 0, [iter((value,))]
    while stack:
        for node in stack[-1]:
            deepest = max(deepest, len(stack))
            if isinstance(node, dict):
                stack.append(iter(node.values()))
                break
            if isinstance(node, list):
                stack.append(iter(node))
                break
        else:
            stack.pop()
    return deepest


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def _ambiguous(exc: AmbiguousFormFieldError) -> IntakeRejectedError:
    """400 MALFORMED_BODY naming the field in `fields` too, so a form can show it in place."""
    return IntakeRejectedError(
        400,
        "MALFORMED_BODY",
        f"cannot parse the form: {exc}",
        fields=[{"field": exc.field, "code": exc.code, "message": str(exc)}],
    )
