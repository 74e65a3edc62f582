"""The dispatcher core: one SQS record in, one outcome per destination out.

Per record: parse the event, resolve its route, and for each destination claim the delivery in
the outcome table, reconcile with the provider if an earlier attempt may have created the order,
send, classify, record. A record is returned to the queue (with a growing delay) only while some
destination is retryable; on its last try the outcome becomes DEAD_LETTERED and SQS's redrive
moves the message to the dead-letter queue.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
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
    DeliveryRetryableError,
    RequestRejectedError,
    UnknownProviderError,
)
from orderbridge.identity import TrackingIds
from orderbridge.models.config import OrderbridgeConfig, RouteDestination
from orderbridge.models.event import OrderEvent
from orderbridge.models.outcome import OutcomeStatus
from orderbridge.outcomes import Claim, OutcomeStore
from orderbridge.providers.base import (
    Delivery,
    Provider,
    ProviderRequest,
    ProviderResult,
    ResultKind,
)
from orderbridge.providers.registry import get_provider_class
from orderbridge.ratelimit import RateLimiter

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
        # A claim must outlive the longest call it covers, or the fence refuses every call.
        floor = self.provider_timeout + self.rate_limit_max_wait + 1.0
        if self.lease_seconds <= floor:
            raise ConfigurationError(
                f"DELIVERY_LEASE_SECONDS ({self.lease_seconds}) must exceed provider timeout + "
                f"rate-limit wait + 1 s ({floor:g})"
            )


@dataclass(frozen=True)
class _Verdict:
    done: bool
    retry_after: float | None = None
    failed: bool = False  # ended FAILED_PERMANENT: the event is parked for a person


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
        dead_letter_queue_url: str | None = None,
        settings: DispatcherSettings | None = None,
        tracking_ids: TrackingIds,
        sender: Sender | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.ids = tracking_ids
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

    def process(self, record: SQSRecord) -> None:
        """Handle one record; raises DeliveryRetryableError to send it back to the queue."""
        receive_count = int(record.attributes.approximate_receive_count or 1)
        try:
            event = OrderEvent.model_validate_json(record.body)
        except (ValidationError, ValueError) as exc:
            tracking_id = f"msg_{record.message_id}"
            self._reject(tracking_id, None, "MALFORMED_EVENT", _describe(exc))
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
        waits: list[float | None] = []
        failed = False
        for route_destination in route.destinations:
            verdict = self._deliver(event, tracking_id, route_destination, config, last_try)
            failed = failed or verdict.failed
            if not verdict.done:
                waits.append(verdict.retry_after)
        if failed and not waits:
            self._park(record, tracking_id, "FAILED_PERMANENT")
        if waits:
            if last_try:
                # visible again at once, so SQS's redrive moves it to the dead-letter queue now
                self._set_visibility(record, 0)
            else:
                self._retry_later(record, receive_count, max((w or 0.0) for w in waits) or None)
            raise DeliveryRetryableError(f"{tracking_id}: {len(waits)} destination(s) to retry")

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
            return _Verdict(done=True, failed=True)
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
            return _Verdict(done=True, failed=claim.final.status is OutcomeStatus.FAILED_PERMANENT)
        log["attempt"] = claim.attempt
        delivery = Delivery(
            tracking_id=tracking_id,
            destination_id=destination_id,
            destination=destination,
            order=event.order,
            source=event.source,
            catalog=route_destination.catalog,
        )
        result = self._attempt(provider, delivery, claim)
        return self._record(delivery, claim.attempt, result, last_try, log)

    def _attempt(self, provider: Provider, delivery: Delivery, claim: Claim) -> ProviderResult:
        secret_id = delivery.destination.secret_id
        try:
            credentials = self.credentials.get(secret_id)
        except CredentialsError as exc:
            return ProviderResult(
                kind=ResultKind.RETRYABLE,
                error_code="CREDENTIALS_UNAVAILABLE",
                error_message=str(exc),
            )
        try:
            lookup = provider.build_lookup(delivery) if claim.needs_reconcile else None
            request = provider.build_create(delivery)
        except RequestRejectedError as exc:
            return ProviderResult(kind=ResultKind.PERMANENT, error_code=exc.code, error_message=exc.message)
        if lookup is None and claim.may_exist:
            return ProviderResult(
                kind=ResultKind.PERMANENT,
                error_code="NEEDS_REVIEW",
                error_message="an earlier attempt may have created the order and this provider "
                "cannot be searched by reference; parked for review instead of risking a double order",
            )
        if lookup is not None:
            found, credentials = self._call(
                provider, lookup, credentials, delivery, provider.parse_lookup, claim.lease_until
            )
            if found.kind is not ResultKind.NOT_FOUND:
                return found  # SUCCEEDED (already created) or an error to retry
        result, _ = self._call(
            provider, request, credentials, delivery, provider.parse_create, claim.lease_until
        )
        return result

    def _call(
        self,
        provider: Provider,
        request: ProviderRequest,
        credentials: dict[str, Any],
        delivery: Delivery,
        parse: Any,
        lease_until: float,
    ) -> tuple[ProviderResult, dict[str, Any]]:
        """Send; on 401/403 re-read the secret once (it may have been rotated) and send again."""
        secret_id = delivery.destination.secret_id
        for refreshed in (False, True):
            throttled = self._wait_for_slot(delivery)
            if throttled is not None:
                return throttled, credentials
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
                return ProviderResult(
                    kind=ResultKind.PERMANENT,
                    error_code="CREDENTIALS_INVALID",
                    error_message=str(exc),
                ), credentials
            answer = self.sender.send(request, headers)
            result = answer if isinstance(answer, ProviderResult) else parse(answer)
            if result.kind is not ResultKind.AUTH:
                return result, credentials
            if refreshed:
                break
            try:
                credentials = self.credentials.get(secret_id, refresh=True)
            except CredentialsError as exc:
                return ProviderResult(
                    kind=ResultKind.RETRYABLE,
                    error_code="CREDENTIALS_UNAVAILABLE",
                    error_message=str(exc),
                ), credentials
        return ProviderResult(
            kind=ResultKind.PERMANENT,
            http_status=result.http_status,
            error_code=result.error_code or "AUTH_REFUSED",
            error_message=f"credentials refused after refresh: {result.error_message}",
        ), credentials

    def _record(
        self,
        delivery: Delivery,
        attempt: int,
        result: ProviderResult,
        last_try: bool,
        log: dict[str, Any],
    ) -> _Verdict:
        common = {
            "tracking_id": delivery.tracking_id,
            "destination": delivery.destination_id,
            "attempt": attempt,
            "http_status": result.http_status,
        }
        if result.kind is ResultKind.SUCCEEDED:
            self.outcomes.finish(
                **common,
                status=OutcomeStatus.SUCCEEDED,
                provider_order_id=result.provider_order_id,
                provider_reference=result.provider_reference,
                redirect_url=result.redirect_url,
            )
            logger.info(
                "provider order created",
                extra=log | {"provider_order_id": result.provider_order_id},
            )
            metrics.add_metric(name="DeliveriesSucceeded", unit=MetricUnit.Count, value=1)
            return _Verdict(done=True)
        if result.kind in (ResultKind.PERMANENT, ResultKind.AUTH, ResultKind.NOT_FOUND):
            self.outcomes.finish(
                **common,
                status=OutcomeStatus.FAILED_PERMANENT,
                error_code=result.error_code,
                error_message=result.error_message,
            )
            logger.warning("delivery failed permanently", extra=log | {"error_code": result.error_code})
            metrics.add_metric(name="DeliveriesFailedPermanent", unit=MetricUnit.Count, value=1)
            return _Verdict(done=True, failed=True)
        status = OutcomeStatus.DEAD_LETTERED if last_try else OutcomeStatus.FAILED_RETRYABLE
        metrics.add_metric(
            name="DeliveriesDeadLettered" if last_try else "DeliveriesRetried", unit=MetricUnit.Count, value=1
        )
        self.outcomes.finish(
            **common,
            status=status,
            error_code=result.error_code,
            error_message=result.error_message,
            unknown_result=result.unknown_result,
        )
        logger.warning(
            "delivery failed; retrying" if not last_try else "delivery out of tries",
            extra=log | {"error_code": result.error_code},
        )
        retry_after = result.retry_after
        if result.unknown_result:
            # The provider may still be working on the request we gave up on: look for the
            # order only after it has surely finished, or the lookup could miss it and re-send.
            retry_after = max(retry_after or 0.0, 2 * self.settings.provider_timeout)
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

    def _wait_for_slot(self, delivery: Delivery) -> ProviderResult | None:
        """Respect the account's rate limit across instances: wait briefly, or give the record back."""
        limit = delivery.destination.rate_limit
        if limit is None or self.limiter is None:
            return None
        wait = self.limiter.reserve(
            f"provider#{delivery.destination_id}",
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


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['msg']}" for e in exc.errors()[:5]]
        return "; ".join(parts)
    return str(exc)[:500]
