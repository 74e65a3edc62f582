"""The dispatcher core: one SQS record in, one outcome per destination out.

Per record: parse the event, resolve its route, and for each destination claim the delivery in
the outcome table, reconcile with the provider if an earlier attempt may have created the order,
send, classify, record. A record is returned to the queue (with a growing delay) only while some
destination is retryable; on its last try the outcome becomes DEAD_LETTERED and SQS's redrive
moves the message to the dead-letter queue.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from orderbridge.config import ConfigStore
from orderbridge.constants import METRICS_NAMESPACE_DEFAULT, METRICS_NAMESPACE_ENV
from orderbridge.credentials import CredentialStore
from orderbridge.dispatch.backoff import retry_delay
from orderbridge.dispatch.sender import Sender
from orderbridge.exceptions import (
    ConfigurationError,
    CredentialsError,
    CredentialsMalformedError,
    CredentialsNotSetError,
    DeliveryRetryableError,
    RequestRejectedError,
    UnknownProviderError,
)
from orderbridge.identity import TrackingIds
from orderbridge.models.config import Destination, OrderbridgeConfig, RouteDestination
from orderbridge.models.event import OrderEvent
from orderbridge.models.outcome import OutcomeStatus
from orderbridge.outcomes import Claim, OutcomeStore
from orderbridge.payloads import EventCodec, PayloadError
from orderbridge.providers.base import (
    Delivery,
    Provider,
    ProviderRequest,
    ProviderResult,
    ResultKind,
)
from orderbridge.providers.registry import get_provider_class
from orderbridge.ratelimit import RateLimiter
from orderbridge.settings import lease_floor_seconds

logger = Logger(child=True)
# Namespace fixed at import, so metrics work whenever this module is first imported.
metrics = Metrics(namespace=os.environ.get(METRICS_NAMESPACE_ENV, METRICS_NAMESPACE_DEFAULT))

_NO_DESTINATION = "-"


@dataclass(frozen=True)
class DispatcherSettings:
    max_receive_count: int = 5
    retry_base_delay: float = 30.0
    retry_max_delay: float = 900.0
    lease_seconds: int = 120
    provider_timeout: float = 10.0
    rate_limit_max_wait: float = 5.0

    def __post_init__(self) -> None:
        # A claim must outlive the longest call it covers, or the fence refuses every call. The
        # environment model checks the same rule at start (DispatcherEnvironment).
        floor = lease_floor_seconds(self.provider_timeout, self.rate_limit_max_wait)
        if self.lease_seconds <= floor:
            raise ConfigurationError(
                f"DELIVERY_LEASE_SECONDS ({self.lease_seconds}) must exceed provider timeout + "
                f"rate-limit wait + 1 s ({floor:g})"
            )

    @property
    def record_needs_ms(self) -> int:
        """The least remaining time worth starting a record with: a lookup and a create, each
        after a rate-limit wait, plus a second for the writes."""
        return int((2 * (self.provider_timeout + self.rate_limit_max_wait) + 1.0) * 1000)

    @property
    def attempt_cap(self) -> int:
        """Attempts (claims) after which an order still in doubt goes to a person, not round again."""
        return 3 * self.max_receive_count


@dataclass(frozen=True)
class _Verdict:
    done: bool
    retry_after: float | None = None
    park: str | None = None  # parked for a person with this reason (FAILED_PERMANENT, NEEDS_REVIEW)
    requeue_after: float | None = None  # look again later on a fresh copy (its tries are not used up)


#: The history note of a delivery whose order an earlier attempt had created (found, not re-sent).
FOUND_BY_LOOKUP_NOTE = "found at the provider by lookup (created by an earlier attempt); not sent again"


@dataclass
class _Progress:
    """How far an attempt got, for an error nobody expected: was a create sent, and when."""

    create_sent_at: datetime | None = None


class Dispatcher:
    """Processes order events from the queue. Safe to run in many workers at once."""

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
        dead_letter_queue_url: str | None = None,
        settings: DispatcherSettings | None = None,
        sender: Sender | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.ids = tracking_ids
        self.codec = codec or EventCodec()
        self.config = config
        self.outcomes = outcomes
        self.credentials = credentials
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.dead_letter_queue_url = dead_letter_queue_url
        self.settings = settings or DispatcherSettings()
        self.sender = sender or Sender(timeout=self.settings.provider_timeout)
        self.limiter = limiter
        self._providers: dict[tuple[str, str], Provider] = {}

    def process(self, record: SQSRecord, *, remaining_ms: Callable[[], int] | None = None) -> None:
        """Handle one record; raises DeliveryRetryableError to send it back to the queue.

        `remaining_ms` (the Lambda context's `get_remaining_time_in_millis`): a record is not
        started when the time left cannot cover its provider calls; a fresh copy goes back on the
        queue instead, so it neither outlives the function nor loses one of its tries.
        """
        if remaining_ms is not None and remaining_ms() < self.settings.record_needs_ms:
            logger.info(
                "too little time left to start this record; re-queued", extra={"id": record.message_id}
            )
            metrics.add_metric(name="RecordsDeferred", unit=MetricUnit.Count, value=1)
            self._requeue(record, 0)
            return
        receive_count = int(record.attributes.approximate_receive_count or 1)
        try:
            event = self.codec.decode(record.body)
        except PayloadError as exc:  # an offloaded event could not be read (S3 down): retry
            logger.error("offloaded event unreadable", extra={"message_id": record.message_id})
            self._retry_later(record, receive_count, None)
            raise DeliveryRetryableError(str(exc)) from exc
        except (ValidationError, ValueError) as exc:
            wrapper, inner = _envelope(record.body)
            event = None
            if inner is not None:  # an SNS or EventBridge envelope around an order event: unwrap it
                try:
                    event = self.codec.decode(inner)
                    logger.info("order event unwrapped", extra={"wrapper": wrapper, "id": record.message_id})
                except (ValidationError, ValueError, PayloadError):
                    event = None
            if event is None:
                tracking_id = f"msg_{record.message_id}"
                why = _WRAPPER_HINTS.get(wrapper or "", "") or _describe(exc)
                self._reject(tracking_id, None, "MALFORMED_EVENT", why)
                self._park(record, tracking_id, "MALFORMED_EVENT")
                return
        try:
            tracking_id = event.resolved_tracking_id(self.ids)
        except CredentialsError as exc:
            logger.error("tracking id key unavailable", extra={"message_id": record.message_id})
            self._retry_later(record, receive_count, None)
            raise DeliveryRetryableError(str(exc)) from exc
        except ValueError as exc:
            tracking_id = f"msg_{record.message_id}"
            self._reject(tracking_id, None, "MALFORMED_EVENT", _describe(exc))
            self._park(record, tracking_id, "MALFORMED_EVENT")
            return
        try:
            config = self.config.load()
        except ConfigurationError as exc:
            logger.error("configuration unavailable", extra={"tracking_id": tracking_id})
            self._retry_later(record, receive_count, None)
            raise DeliveryRetryableError(str(exc)) from exc
        route = config.routes.get(event.route)
        if route is None:
            self._reject(
                tracking_id,
                event.source,
                "UNKNOWN_ROUTE",
                f"route {event.route!r} is not configured",
            )
            self._park(record, tracking_id, "UNKNOWN_ROUTE")
            return
        last_try = receive_count >= self.settings.max_receive_count
        verdicts = []
        for route_destination in route.destinations:
            try:
                verdicts.append(self._deliver(event, tracking_id, route_destination, config, last_try))
            except Exception:  # nothing was claimed, or the claim's lease will hand it over
                logger.exception("delivery failed unexpectedly", extra={"tracking_id": tracking_id})
                verdicts.append(_Verdict(done=False))
        waits = [v.retry_after for v in verdicts if not v.done and v.requeue_after is None]
        requeues = [v.requeue_after for v in verdicts if v.requeue_after is not None]
        parks = [v.park for v in verdicts if v.park]
        if parks and not waits and not requeues:
            self._park(record, tracking_id, "NEEDS_REVIEW" if "NEEDS_REVIEW" in parks else parks[0])
        if waits:
            if last_try:
                # visible again at once, so SQS's redrive moves it to the dead-letter queue now
                self._set_visibility(record, 0)
            else:
                self._retry_later(record, receive_count, max((w or 0.0) for w in waits) or None)
            raise DeliveryRetryableError(f"{tracking_id}: {len(waits)} destination(s) to retry")
        if requeues:
            self._requeue(record, min(r or 0.0 for r in requeues))

    def deliver_now(self, event: OrderEvent) -> bool:
        """Attempt every destination of an accepted event right away (the checkout mode).

        The same claim as for queued records, so the queued copy of the event and this call can
        race without doubling the order. Returns True when every destination is finished.
        """
        tracking_id = event.resolved_tracking_id(self.ids)
        config = self.config.load()
        route = config.routes.get(event.route)
        if route is None:
            return False
        verdicts = [
            self._deliver(event, tracking_id, rd, config, last_try=False) for rd in route.destinations
        ]
        return all(v.done for v in verdicts)

    # --- one destination ------------------------------------------------------------------------

    def _deliver(
        self,
        event: OrderEvent,
        tracking_id: str,
        route_destination: RouteDestination,
        config: OrderbridgeConfig,
        last_try: bool,
    ) -> _Verdict:
        destination_id = route_destination.destination
        destination = config.destinations[destination_id]
        log = {
            "tracking_id": tracking_id,
            "destination": destination_id,
            "provider": destination.provider,
        }
        try:
            provider = self._provider(destination_id, config)
        except UnknownProviderError as exc:
            self._reject(tracking_id, event.source, "UNKNOWN_PROVIDER", str(exc), destination_id)
            return _Verdict(done=True, park="FAILED_PERMANENT")
        # The slot first, the claim after: a worker that dies while waiting for the provider's
        # rate limit has claimed nothing, so its order is not taken for one that may exist.
        throttled = self._wait_for_slot(destination_id, destination)
        if throttled is not None:
            logger.info("rate limit used up; will come back", extra=log)
            return _Verdict(done=False, retry_after=throttled.retry_after)
        try:
            claim = self.outcomes.claim(
                tracking_id=tracking_id,
                destination=destination_id,
                provider=destination.provider,
                route=event.route,
                source=event.source,
                external_order_id=event.order.external_order_id,
                lease_seconds=self.settings.lease_seconds,
            )
        except DeliveryRetryableError as busy:
            # Come back when the other worker's lease is over: by then it has finished, or died
            # and the delivery can be taken over (and reconciled).
            logger.info("delivery in flight elsewhere; will look again", extra=log)
            return _Verdict(done=False, retry_after=busy.retry_after)
        if claim.final is not None:
            logger.info("delivery already finished", extra=log | {"status": claim.final.status})
            return _Verdict(done=True)
        log["attempt"] = claim.attempt
        progress = _Progress()
        this_delivery = partial(
            Delivery,
            tracking_id=tracking_id,
            destination_id=destination_id,
            destination=destination,
            order=event.order,
            source=event.source,
        )
        try:
            delivery = this_delivery(catalog=route_destination.catalog)
            result = self._attempt(provider, delivery, claim, progress)
        except Exception as exc:  # a fault of ours (a bad catalog entry, a bug): visible, retried
            logger.exception("delivery failed unexpectedly", extra=log)
            delivery = this_delivery()  # recorded without the catalog that may be the fault
            result = ProviderResult(
                kind=ResultKind.RETRYABLE,
                error_code="INTERNAL_ERROR",
                error_message=f"{type(exc).__name__}: {exc}"[:300],
                unknown_result=progress.create_sent_at is not None,
            )
        return self._record(delivery, provider, claim, progress, result, last_try, log)

    def _attempt(
        self, provider: Provider, delivery: Delivery, claim: Claim, progress: _Progress
    ) -> ProviderResult:
        credentials = self._usable_credentials(provider, delivery)
        if isinstance(credentials, ProviderResult):
            return credentials
        try:
            lookup = provider.build_lookup(delivery) if claim.needs_reconcile else None
            request = provider.build_create(delivery)
        except RequestRejectedError as exc:
            return ProviderResult(kind=ResultKind.PERMANENT, error_code=exc.code, error_message=exc.message)
        if lookup is None and claim.may_exist:
            return ProviderResult(
                kind=ResultKind.REVIEW,
                error_code="NEEDS_REVIEW",
                error_message="an earlier attempt may have created the order and this provider "
                "cannot be searched by reference; parked for review instead of risking a double order",
            )
        slot_taken = True  # _deliver waited for this call's slot before it claimed
        if lookup is not None:
            found, credentials = self._call(
                provider, lookup, credentials, delivery, provider.parse_lookup, claim.lease_until, slot_taken
            )
            slot_taken = False
            if found.kind is not ResultKind.NOT_FOUND:
                return found  # SUCCEEDED (already created) or an error to retry
            reconciling = self._still_reconciling(provider, claim)
            if reconciling is not None:
                return reconciling
        progress.create_sent_at = _now()
        result, _ = self._call(
            provider, request, credentials, delivery, provider.parse_create, claim.lease_until, slot_taken
        )
        return result

    def _read_credentials(
        self, provider: Provider, delivery: Delivery, *, refresh: bool = False
    ) -> dict[str, Any] | ProviderResult:
        """The destination's secret, or the result that ends this attempt without a call: a secret
        never set (the deploy's placeholder) is PERMANENT CREDENTIALS_NOT_SET, FAILED until the
        operator sets it and retries; one that cannot be read now is RETRYABLE."""
        secret_id = delivery.destination.secret_id
        try:
            return self.credentials.get(secret_id, refresh=refresh)
        except CredentialsNotSetError as exc:
            return ProviderResult(
                kind=ResultKind.PERMANENT,
                error_code=CredentialsNotSetError.code,
                error_message=f"{exc}; the {provider.name} destination {delivery.destination_id!r} needs "
                f"{provider.credentials_shape()}; then `orderbridge retry {delivery.tracking_id}`",
            )
        except CredentialsError as exc:
            return ProviderResult(
                kind=ResultKind.RETRYABLE,
                error_code="CREDENTIALS_UNAVAILABLE",
                error_message=str(exc),
            )

    def _usable_credentials(self, provider: Provider, delivery: Delivery) -> dict[str, Any] | ProviderResult:
        """The destination's secret once the adapter can authenticate with it, or the result that
        ends this attempt without a call (`_read_credentials`, `_malformed`). A cached secret of the
        wrong shape (without the key the adapter reads) is read again at once before anything is
        decided, so a secret fixed since counts now rather than when the cache runs out."""
        problem: CredentialsError | None = None
        for refresh in (False, True):
            secret = self._read_credentials(provider, delivery, refresh=refresh)
            if isinstance(secret, ProviderResult):
                return secret
            try:
                provider.auth_headers(secret)
            except CredentialsError as exc:
                problem = exc
                continue
            return secret
        assert problem is not None
        return self._malformed(provider, delivery, problem)

    @staticmethod
    def _malformed(provider: Provider, delivery: Delivery, problem: CredentialsError) -> ProviderResult:
        """RETRYABLE CREDENTIALS_MALFORMED: the secret, as just read, lacks a key the adapter needs,
        so nothing was sent (the provider did not refuse anything). Retried with backoff like an
        unreadable secret: once the operator fixes it, the order goes through on its next try; out
        of tries it is DEAD_LETTERED, where `orderbridge retry` finds it. The message names the
        secret, the key and the shape, never a value."""
        return ProviderResult(
            kind=ResultKind.RETRYABLE,
            error_code=CredentialsMalformedError.code,
            error_message=f"secret {delivery.destination.secret_id!r} of the {provider.name} destination "
            f"{delivery.destination_id!r} has the wrong shape: {problem} (nothing was sent; the order "
            "is retried, and goes through once the secret is fixed)",
        )

    def _still_reconciling(self, provider: Provider, claim: Claim) -> ProviderResult | None:
        """Not found, but the provider may still be creating it: look again later, do not send.

        The window runs from when the create of unknown result was sent (or the dead worker
        claimed it) and is the provider's `reconcile_window` long; lookups inside it come every
        sixth of the window (at least two client timeouts apart).
        """
        if not claim.may_exist:
            return None
        window = provider.reconcile_window
        since = claim.prior_unknown_since or _now()
        left = (since + timedelta(seconds=window) - _now()).total_seconds()
        if left <= 0:
            return None
        again = min(left, max(window / 6, 2 * self.settings.provider_timeout))
        return ProviderResult(
            kind=ResultKind.RETRYABLE,
            error_code="RECONCILING",
            error_message=f"not found yet; the provider may still create it for {left:.0f} s, "
            f"looking again in {again:.0f} s",
            retry_after=again,
            unknown_result=True,
        )

    def _call(
        self,
        provider: Provider,
        request: ProviderRequest,
        credentials: dict[str, Any],
        delivery: Delivery,
        parse: Any,
        lease_until: float,
        slot_taken: bool = False,
    ) -> tuple[ProviderResult, dict[str, Any]]:
        """Send; on 401/403 re-read the secret once (it may have been rotated) and send again. A
        re-read secret the adapter cannot use ends the attempt unsent (`_malformed`)."""
        for refreshed in (False, True):
            if not slot_taken:
                throttled = self._wait_for_slot(delivery.destination_id, delivery.destination)
                if throttled is not None:
                    return throttled, credentials
            slot_taken = False
            # Fence: never start a call that could outlive our claim. Once the lease is over,
            # another worker may take the delivery, look it up, find nothing and create it.
            if time.time() + self.settings.provider_timeout + 1.0 >= lease_until:
                return ProviderResult(
                    kind=ResultKind.RETRYABLE,
                    error_code="LEASE_EXPIRED",
                    error_message="the claim on this delivery ran out before the call; not sent",
                ), credentials
            try:
                headers = provider.auth_headers(credentials)
            except CredentialsError as exc:
                return self._malformed(provider, delivery, exc), credentials
            answer = self.sender.send(request, headers)
            result = answer if isinstance(answer, ProviderResult) else parse(answer)
            if result.kind is not ResultKind.AUTH:
                return result, credentials
            if refreshed:
                break
            fresh = self._read_credentials(provider, delivery, refresh=True)
            if isinstance(fresh, ProviderResult):
                return fresh, credentials
            credentials = fresh
        return ProviderResult(
            kind=ResultKind.PERMANENT,
            http_status=result.http_status,
            error_code=result.error_code or "AUTH_REFUSED",
            error_message=f"credentials refused after refresh: {result.error_message}",
        ), credentials

    def _record(
        self,
        delivery: Delivery,
        provider: Provider,
        claim: Claim,
        progress: _Progress,
        result: ProviderResult,
        last_try: bool,
        log: dict[str, Any],
    ) -> _Verdict:
        attempt = claim.attempt
        common = {
            "tracking_id": delivery.tracking_id,
            "destination": delivery.destination_id,
            "attempt": attempt,
            "http_status": result.http_status,
        }
        if result.kind is ResultKind.SUCCEEDED:
            # No create went out in this attempt: the lookup found an order an earlier one made.
            found = claim.needs_reconcile and progress.create_sent_at is None
            self.outcomes.finish(
                **common,
                status=OutcomeStatus.SUCCEEDED,
                provider_order_id=result.provider_order_id,
                provider_reference=result.provider_reference,
                redirect_url=result.redirect_url,
                note=FOUND_BY_LOOKUP_NOTE if found else None,
            )
            logger.info(
                "provider order found by lookup, not sent again" if found else "provider order created",
                extra=log | {"provider_order_id": result.provider_order_id},
            )
            metrics.add_metric(name="DeliveriesSucceeded", unit=MetricUnit.Count, value=1)
            return _Verdict(done=True)
        # When the create of unknown result went out: this attempt's, else the one still in doubt.
        since = progress.create_sent_at if result.unknown_result and progress.create_sent_at else None
        since = since or claim.prior_unknown_since or _now()
        in_doubt = result.unknown_result or (claim.may_exist and result.kind is not ResultKind.PERMANENT)
        lookup = provider.supports_lookup
        if result.kind is ResultKind.REVIEW or (
            in_doubt and (attempt >= self.settings.attempt_cap or (last_try and not lookup))
        ):
            self.outcomes.finish(
                **common,
                status=OutcomeStatus.NEEDS_REVIEW,
                error_code=result.error_code if result.kind is ResultKind.REVIEW else "NEEDS_REVIEW",
                error_message=result.error_message
                if result.kind is ResultKind.REVIEW
                else f"still unconfirmed after {attempt} attempts: {result.error_message}",
                unknown_result=True,
                unknown_since=since,
            )
            logger.warning("delivery needs review", extra=log | {"error_code": result.error_code})
            metrics.add_metric(name="DeliveriesNeedReview", unit=MetricUnit.Count, value=1)
            return _Verdict(done=True, park="NEEDS_REVIEW")
        if result.kind in (ResultKind.PERMANENT, ResultKind.AUTH, ResultKind.NOT_FOUND):
            self.outcomes.finish(
                **common,
                status=OutcomeStatus.FAILED_PERMANENT,
                error_code=result.error_code,
                error_message=result.error_message,
            )
            logger.warning("delivery failed permanently", extra=log | {"error_code": result.error_code})
            metrics.add_metric(name="DeliveriesFailedPermanent", unit=MetricUnit.Count, value=1)
            return _Verdict(done=True, park="FAILED_PERMANENT")
        retry_after = result.retry_after
        if result.unknown_result and result.error_code != "RECONCILING":
            # The provider may still be working on the request we gave up on: look for the
            # order only after it has surely finished, or the lookup could miss it and re-send.
            retry_after = max(retry_after or 0.0, 2 * self.settings.provider_timeout)
        # In doubt, the order is looked for again on a fresh copy of the message, whatever its
        # tries: running out of tries while the provider may have the order would report a
        # failure for an order that exists. The attempt cap bounds it.
        requeue = in_doubt and (last_try or result.error_code == "RECONCILING")
        status = OutcomeStatus.DEAD_LETTERED if last_try and not requeue else OutcomeStatus.FAILED_RETRYABLE
        metrics.add_metric(
            name="DeliveriesDeadLettered" if status is OutcomeStatus.DEAD_LETTERED else "DeliveriesRetried",
            unit=MetricUnit.Count,
            value=1,
        )
        self.outcomes.finish(
            **common,
            status=status,
            error_code=result.error_code,
            error_message=result.error_message,
            unknown_result=in_doubt,
            unknown_since=since if in_doubt else None,
        )
        logger.warning(
            "delivery out of tries" if status is OutcomeStatus.DEAD_LETTERED else "delivery failed; retrying",
            extra=log | {"error_code": result.error_code},
        )
        if requeue:
            return _Verdict(done=False, requeue_after=retry_after or 0.0)
        return _Verdict(done=False, retry_after=retry_after)

    # --- helpers ---------------------------------------------------------------------------------

    def _provider(self, destination_id: str, config: OrderbridgeConfig) -> Provider:
        destination = config.destinations[destination_id]
        key = (destination_id, destination.model_dump_json())
        if key not in self._providers:
            self._providers[key] = get_provider_class(destination.provider)(destination=destination)
        return self._providers[key]

    def _reject(
        self,
        tracking_id: str,
        source: str | None,
        code: str,
        message: str,
        destination: str = _NO_DESTINATION,
    ) -> None:
        logger.warning("event rejected", extra={"tracking_id": tracking_id, "error_code": code})
        self.outcomes.record_rejected(
            tracking_id=tracking_id,
            destination=destination,
            source=source,
            error_code=code,
            message=message,
        )

    def _wait_for_slot(self, destination_id: str, destination: Destination) -> ProviderResult | None:
        """Respect the account's rate limit across instances: wait briefly, or give the record back."""
        limit = destination.rate_limit
        if limit is None or self.limiter is None:
            return None
        wait = self.limiter.reserve(
            f"provider#{destination_id}",
            limit=max(1, int(limit.requests * limit.headroom)),
            per_seconds=limit.per_seconds,
            burst=limit.burst,
            max_wait=self.settings.rate_limit_max_wait,
        )
        if wait > self.settings.rate_limit_max_wait:
            metrics.add_metric(name="RateLimitDeferrals", unit=MetricUnit.Count, value=1)
            return ProviderResult(
                kind=ResultKind.RETRYABLE,
                error_code="RATE_LIMITED_LOCALLY",
                error_message=f"the account's rate limit is used up for the next {wait:.1f}s",
                retry_after=wait,
            )
        if wait > 0:
            time.sleep(wait)
        return None

    def _park(self, record: SQSRecord, tracking_id: str, reason: str) -> None:
        """Copy the event to the dead-letter queue, where an operator can retry it after a fix."""
        if not self.dead_letter_queue_url:
            return
        self.sqs.send_message(
            QueueUrl=self.dead_letter_queue_url,
            MessageBody=record.body,
            MessageAttributes={
                "tracking_id": {"DataType": "String", "StringValue": tracking_id},
                "reason": {"DataType": "String", "StringValue": reason},
            },
        )

    def _requeue(self, record: SQSRecord, delay: float) -> None:
        """A fresh copy of the record, visible after `delay` s; the original is then deleted.

        Used where the record is to come back without using up one of its tries: still looking
        for an order the provider may be creating, or too little time left to start it. Should
        the copy fail, the record is retried the ordinary way. A crash between the copy and the
        original's deletion leaves two copies, which the claim turns into one delivery.
        """
        try:
            self.sqs.send_message(
                QueueUrl=self.queue_url, MessageBody=record.body, DelaySeconds=min(900, max(0, int(delay)))
            )
        except Exception as exc:
            logger.exception("could not re-queue the record; it is retried instead")
            raise DeliveryRetryableError("re-queue failed", retry_after=delay) from exc

    def _retry_later(self, record: SQSRecord, receive_count: int, retry_after: float | None) -> None:
        delay = retry_delay(
            receive_count,
            base=self.settings.retry_base_delay,
            cap=self.settings.retry_max_delay,
            retry_after=retry_after,
        )
        self._set_visibility(record, delay)

    def _set_visibility(self, record: SQSRecord, delay: int) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=record.receipt_handle,
                VisibilityTimeout=delay,
            )
        except Exception:  # the queue's own visibility timeout still applies
            logger.exception("could not set retry delay", extra={"message_id": record.message_id})


def _now() -> datetime:
    return datetime.now(UTC)


_WRAPPER_HINTS = {
    "SNS": "the message is an SNS notification envelope whose Message is not an order event; "
    "turn on raw message delivery on the SNS subscription (RawMessageDelivery: true) so the queue "
    "receives the order event itself",
    "EventBridge": "the message is an EventBridge event whose detail is not an order event; set the "
    "rule target's input path to $.detail (InputPath) so the queue receives the order event itself",
}


def _envelope(body: str) -> tuple[str | None, str | None]:
    """(wrapper, inner body) of an SNS notification or an EventBridge event; (None, None) else."""
    try:
        doc = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return None, None
    if not isinstance(doc, dict):
        return None, None
    if doc.get("Type") == "Notification" and "TopicArn" in doc:
        message = doc.get("Message")
        return "SNS", message if isinstance(message, str) else None
    if "detail-type" in doc and "detail" in doc and "source" in doc:
        detail = doc.get("detail")
        return "EventBridge", json.dumps(detail) if isinstance(detail, dict) else None
    return None, None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['msg']}" for e in exc.errors()[:5]]
        return "; ".join(parts)
    return str(exc)[:500]
