"""Building the services from environment variables (the names live in `constants`).

The Lambda functions call these once per execution environment, at import time, so clients
and caches survive across invocations. Each builder imports what it builds, so a function loads only
its own path: the dispatcher never imports the intake, and the intake imports the dispatcher (with
`requests` and the provider adapters) only when a checkout-mode form first needs it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from orderbridge import clients, constants
from orderbridge.config import ConfigStore
from orderbridge.credentials import CredentialStore
from orderbridge.identity import TrackingIds
from orderbridge.outcomes import OutcomeStore
from orderbridge.ratelimit import DynamoDBRateLimiter, PostRateLimiter

if TYPE_CHECKING:
    from orderbridge.dispatch import Dispatcher
    from orderbridge.imports.service import ImportService
    from orderbridge.intake import IntakeService
    from orderbridge.payloads import EventCodec


def _env(name: str, default: object = None) -> str:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise KeyError(f"environment variable {name} is required")
        return str(default)
    return value


def config_store() -> ConfigStore:
    return ConfigStore(
        bucket=_env(constants.CONFIG_BUCKET_ENV),
        key=_env(constants.CONFIG_KEY_ENV, constants.CONFIG_KEY_DEFAULT),
        max_age=int(_env(constants.CONFIG_MAX_AGE_ENV, constants.CONFIG_MAX_AGE_DEFAULT)),
    )


def credential_store() -> CredentialStore:
    return CredentialStore(max_age=int(_env(constants.SECRET_MAX_AGE_ENV, constants.SECRET_MAX_AGE_DEFAULT)))


def outcome_store() -> OutcomeStore:
    return OutcomeStore(
        table_name=_env(constants.OUTCOME_TABLE_ENV),
        ttl_days=int(_env(constants.OUTCOME_TTL_DAYS_ENV, constants.OUTCOME_TTL_DAYS_DEFAULT)),
    )


def event_codec() -> EventCodec:
    """Queue bodies, with events over SQS's size limit kept in the event payload bucket."""
    from orderbridge.payloads import EventCodec

    return EventCodec(
        s3_client=clients.client("s3"), bucket=os.environ.get(constants.EVENT_PAYLOAD_BUCKET_ENV)
    )


def tracking_ids(credentials: CredentialStore) -> TrackingIds:
    """Tracking ids keyed by the stack's secret (every function derives them the same way)."""
    secret_id = _env(constants.TRACKING_ID_KEY_SECRET_ENV, constants.TRACKING_ID_KEY_SECRET_DEFAULT)
    return TrackingIds.from_secret(credentials, secret_id)


def post_rate_limiter(credentials: CredentialStore) -> PostRateLimiter | None:
    """Form post limits in the shared rate-limit table; IPs keyed by a hash whose key is a secret."""
    table = os.environ.get(constants.RATE_LIMIT_TABLE_ENV)
    if not table:
        return None
    secret_id = _env(constants.CLIENT_HASH_SECRET_ENV, constants.CLIENT_HASH_SECRET_DEFAULT)

    def hash_key() -> bytes | None:
        value = credentials.get(secret_id)
        key = value.get("key") or value.get("token")
        return str(key).encode() if key else None

    return PostRateLimiter(limiter=DynamoDBRateLimiter(table_name=table), hash_key=hash_key)


def intake_service() -> IntakeService:
    from orderbridge.intake import IntakeService

    credentials = credential_store()
    return IntakeService(
        config=config_store(),
        outcomes=outcome_store(),
        credentials=credentials,
        post_limiter=post_rate_limiter(credentials),
        secret_refresh_interval=float(
            _env(constants.SIGNING_SECRET_REFRESH_ENV, constants.SIGNING_SECRET_REFRESH_DEFAULT)
        ),
        sqs_client=clients.client("sqs"),
        queue_url=_env(constants.ORDER_QUEUE_URL_ENV),
        tracking_ids=tracking_ids(credentials),
        codec=event_codec(),
        webhook_tolerance=int(_env(constants.WEBHOOK_TOLERANCE_ENV, constants.WEBHOOK_TOLERANCE_DEFAULT)),
        max_body_bytes=int(_env(constants.MAX_BODY_BYTES_ENV, constants.MAX_BODY_BYTES_DEFAULT)),
        dispatcher_factory=dispatcher,
    )


def dispatcher() -> Dispatcher:
    from orderbridge.dispatch import Dispatcher, DispatcherSettings

    credentials = credential_store()
    return Dispatcher(
        config=config_store(),
        outcomes=outcome_store(),
        credentials=credentials,
        tracking_ids=tracking_ids(credentials),
        codec=event_codec(),
        sqs_client=clients.client("sqs"),
        queue_url=_env(constants.ORDER_QUEUE_URL_ENV),
        dead_letter_queue_url=os.environ.get(constants.DEAD_LETTER_QUEUE_URL_ENV),
        limiter=DynamoDBRateLimiter(table_name=os.environ[constants.RATE_LIMIT_TABLE_ENV])
        if os.environ.get(constants.RATE_LIMIT_TABLE_ENV)
        else None,
        settings=DispatcherSettings(
            max_receive_count=int(_env(constants.MAX_RECEIVE_COUNT_ENV, constants.MAX_RECEIVE_COUNT_DEFAULT)),
            retry_base_delay=float(_env(constants.RETRY_BASE_DELAY_ENV, constants.RETRY_BASE_DELAY_DEFAULT)),
            retry_max_delay=float(_env(constants.RETRY_MAX_DELAY_ENV, constants.RETRY_MAX_DELAY_DEFAULT)),
            lease_seconds=int(_env(constants.LEASE_SECONDS_ENV, constants.LEASE_SECONDS_DEFAULT)),
            provider_timeout=float(_env(constants.PROVIDER_TIMEOUT_ENV, constants.PROVIDER_TIMEOUT_DEFAULT)),
            rate_limit_max_wait=float(
                _env(constants.RATE_LIMIT_MAX_WAIT_ENV, constants.RATE_LIMIT_MAX_WAIT_DEFAULT)
            ),
        ),
    )


def import_service() -> ImportService:
    """The importer: S3 files and feeds into the order queue (docs/imports.md)."""
    from orderbridge.imports.enqueue import OrderSink
    from orderbridge.imports.feed import FeedClient
    from orderbridge.imports.service import ImportService, ImportSettings
    from orderbridge.imports.state import ImportStateStore
    from orderbridge.imports.summary import SummaryWriter

    dynamodb = clients.client("dynamodb")
    ttl_days = int(_env(constants.OUTCOME_TTL_DAYS_ENV, constants.OUTCOME_TTL_DAYS_DEFAULT))
    outcome_table = _env(constants.OUTCOME_TABLE_ENV)
    state = ImportStateStore(
        table_name=_env(constants.IMPORT_STATE_TABLE_ENV), dynamodb_client=dynamodb, ttl_days=ttl_days
    )
    return ImportService(
        config=config_store(),
        state=state,
        sink=OrderSink(
            sqs_client=clients.client("sqs"),
            queue_url=_env(constants.ORDER_QUEUE_URL_ENV),
            dynamodb_client=dynamodb,
            outcome_table=outcome_table,
            state=state,
            tracking_ids=tracking_ids(credential_store()),
            codec=event_codec(),
        ),
        summaries=SummaryWriter(dynamodb_client=dynamodb, outcome_table=outcome_table, ttl_days=ttl_days),
        s3_client=clients.client("s3"),
        import_bucket=os.environ.get(constants.IMPORT_BUCKET_ENV),
        feed_client=FeedClient(credentials=credential_store()),
        settings=ImportSettings(
            safety_margin_seconds=float(
                _env(constants.IMPORT_SAFETY_MARGIN_ENV, constants.IMPORT_SAFETY_MARGIN_DEFAULT)
            ),
            chunk_orders=int(_env(constants.IMPORT_CHUNK_ORDERS_ENV, constants.IMPORT_CHUNK_ORDERS_DEFAULT)),
        ),
    )
