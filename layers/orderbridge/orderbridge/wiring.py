"""Building the services from each function's environment model (`orderbridge.settings`).

The Lambda functions read their model once per execution environment, at import, and pass it here,
so clients and caches survive across invocations. Called without a model, a builder reads the one it
needs from `os.environ` now (the local run and tests set the environment, then build). Each builder
imports what it builds, so a function loads only its own path: the dispatcher never imports the
intake, and the intake imports the dispatcher (with `requests` and the provider adapters) only when
a checkout-mode form first needs it. A missing or bad variable raises SettingsError.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from orderbridge import clients
from orderbridge.config import ConfigStore
from orderbridge.credentials import CredentialStore
from orderbridge.identity import TrackingIds
from orderbridge.outcomes import OutcomeStore
from orderbridge.ratelimit import DynamoDBRateLimiter, PostRateLimiter
from orderbridge.settings import (
    DispatcherEnvironment,
    FunctionEnvironment,
    ImporterEnvironment,
    IntakeEnvironment,
    PipelineEnvironment,
)

if TYPE_CHECKING:
    from orderbridge.dispatch import Dispatcher
    from orderbridge.imports.service import ImportService
    from orderbridge.intake import IntakeService
    from orderbridge.payloads import EventCodec


def config_store(env: PipelineEnvironment | None = None) -> ConfigStore:
    """The configuration document, checked against the stack's RESOURCE_PREFIX."""
    env = env or PipelineEnvironment.from_environ()
    return ConfigStore(
        bucket=env.config_bucket,
        key=env.config_key,
        max_age=env.config_max_age_seconds,
        resource_prefix=env.resource_prefix,
    )


def credential_store(env: PipelineEnvironment | None = None) -> CredentialStore:
    env = env or PipelineEnvironment.from_environ()
    return CredentialStore(max_age=env.secret_max_age_seconds)


def outcome_store(env: FunctionEnvironment | None = None) -> OutcomeStore:
    env = env or FunctionEnvironment.from_environ()
    return OutcomeStore(table_name=env.outcome_table, ttl_days=env.outcome_ttl_days)


def event_codec(env: PipelineEnvironment | None = None) -> EventCodec:
    """Queue bodies, with events over SQS's size limit kept in the event payload bucket."""
    from orderbridge.payloads import EventCodec

    env = env or PipelineEnvironment.from_environ()
    return EventCodec(s3_client=clients.client("s3"), bucket=env.event_payload_bucket)


def tracking_ids(credentials: CredentialStore, env: PipelineEnvironment | None = None) -> TrackingIds:
    """Tracking ids keyed by the stack's secret (every function derives them the same way)."""
    env = env or PipelineEnvironment.from_environ()
    return TrackingIds.from_secret(credentials, env.tracking_id_key_secret_id)


def post_rate_limiter(
    credentials: CredentialStore, env: IntakeEnvironment | None = None
) -> PostRateLimiter | None:
    """Form post limits in the shared rate-limit table; IPs keyed by a hash whose key is a secret."""
    env = env or IntakeEnvironment.from_environ()
    if not env.rate_limit_table:
        return None
    secret_id = env.client_hash_secret_id

    def hash_key() -> bytes | None:
        value = credentials.get(secret_id)
        key = value.get("key") or value.get("token")
        return str(key).encode() if key else None

    return PostRateLimiter(limiter=DynamoDBRateLimiter(table_name=env.rate_limit_table), hash_key=hash_key)


def intake_service(env: IntakeEnvironment | None = None) -> IntakeService:
    from orderbridge.intake import IntakeService

    env = env or IntakeEnvironment.from_environ()
    credentials = credential_store(env)
    return IntakeService(
        config=config_store(env),
        outcomes=outcome_store(env),
        credentials=credentials,
        post_limiter=post_rate_limiter(credentials, env),
        secret_refresh_interval=env.signing_secret_refresh_seconds,
        sqs_client=clients.client("sqs"),
        queue_url=env.order_queue_url,
        tracking_ids=tracking_ids(credentials, env),
        codec=event_codec(env),
        webhook_tolerance=env.webhook_tolerance_seconds,
        max_body_bytes=env.max_body_bytes,
        max_signed_body_bytes=env.max_signed_body_bytes,
        dispatcher_factory=partial(dispatcher, env),  # the environment read once, not again
    )


def dispatcher(env: DispatcherEnvironment | None = None) -> Dispatcher:
    from orderbridge.dispatch import Dispatcher, DispatcherSettings

    env = env or DispatcherEnvironment.from_environ()
    credentials = credential_store(env)
    return Dispatcher(
        config=config_store(env),
        outcomes=outcome_store(env),
        credentials=credentials,
        tracking_ids=tracking_ids(credentials, env),
        codec=event_codec(env),
        sqs_client=clients.client("sqs"),
        queue_url=env.order_queue_url,
        dead_letter_queue_url=env.dead_letter_queue_url,
        limiter=DynamoDBRateLimiter(table_name=env.rate_limit_table) if env.rate_limit_table else None,
        settings=DispatcherSettings(
            max_receive_count=env.max_receive_count,
            retry_base_delay=env.retry_base_delay_seconds,
            retry_max_delay=env.retry_max_delay_seconds,
            lease_seconds=env.delivery_lease_seconds,
            provider_timeout=env.provider_timeout_seconds,
            rate_limit_max_wait=env.rate_limit_max_wait_seconds,
        ),
    )


def import_service(env: ImporterEnvironment | None = None) -> ImportService:
    """The importer: S3 files and feeds into the order queue (docs/imports.md)."""
    from orderbridge.imports.enqueue import OrderSink
    from orderbridge.imports.feed import FeedClient
    from orderbridge.imports.service import ImportService, ImportSettings
    from orderbridge.imports.state import ImportStateStore
    from orderbridge.imports.summary import SummaryWriter

    env = env or ImporterEnvironment.from_environ()
    dynamodb = clients.client("dynamodb")
    credentials = credential_store(env)
    state = ImportStateStore(
        table_name=env.import_state_table, dynamodb_client=dynamodb, ttl_days=env.outcome_ttl_days
    )
    return ImportService(
        config=config_store(env),
        state=state,
        sink=OrderSink(
            sqs_client=clients.client("sqs"),
            queue_url=env.order_queue_url,
            dynamodb_client=dynamodb,
            outcome_table=env.outcome_table,
            state=state,
            tracking_ids=tracking_ids(credentials, env),
            codec=event_codec(env),
        ),
        summaries=SummaryWriter(
            dynamodb_client=dynamodb, outcome_table=env.outcome_table, ttl_days=env.outcome_ttl_days
        ),
        s3_client=clients.client("s3"),
        import_bucket=env.import_bucket,
        feed_client=FeedClient(credentials=credentials),
        settings=ImportSettings(
            safety_margin_seconds=env.import_safety_margin_seconds, chunk_orders=env.import_chunk_orders
        ),
    )
