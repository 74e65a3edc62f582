"""Each function's environment as one typed model: the one place a variable's name, type, default,
bounds and meaning are declared.

The functions read their model once per execution environment (at import, in `functions/*/app.py`)
and `orderbridge.wiring` builds the services from it. A missing or bad value raises SettingsError
naming every variable at fault and what is wrong with it (`DELIVERY_LEASE_SECONDS='abc': not an
integer`); no variable holds a secret (only secret *ids*), and a message shows only the value of the
variable it is about. A variable set to the empty string counts as unset (CloudFormation's
`!If [cond, value, ""]`).

Plain pydantic models rather than pydantic-settings: the same validation without its ~50-80 ms of
extra imports (argparse, asyncio, dotenv) on every cold start, and an explicit `environ` mapping
makes each model testable without touching `os.environ`.

Models: FunctionEnvironment (every function) <- PipelineEnvironment (intake, dispatcher, importer)
<- DispatcherEnvironment <- IntakeEnvironment (checkout-mode forms dispatch inline);
ImporterEnvironment <- PipelineEnvironment; SweeperEnvironment <- FunctionEnvironment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from orderbridge.exceptions import SettingsError

#: RESOURCE_PREFIX when unset: every secret the stack's roles may read is under `orderbridge/`.
DEFAULT_RESOURCE_PREFIX: Final = "orderbridge"
#: What Secrets Manager allows in a name, `/`-separated, neither leading nor trailing `/`.
RESOURCE_PREFIX_PATTERN: Final = r"^[A-Za-z0-9_+=.@-]+(/[A-Za-z0-9_+=.@-]+)*$"


@dataclass(frozen=True)
class SecretNames:
    """The secret ids derived from a stack's RESOURCE_PREFIX: the one rule, used by the settings'
    defaults and by the configuration check (template.yaml's `GetSecretValue` policies grant the
    same prefixes, so an id outside them works on moto and is AccessDenied on AWS)."""

    resource_prefix: str = DEFAULT_RESOURCE_PREFIX

    @property
    def providers(self) -> str:
        """Prefix of destinations' credentials (`destinations.*.secret_id`)."""
        return f"{self.resource_prefix}/providers/"

    @property
    def webhooks(self) -> str:
        """Prefix of webhook sources' signing secrets (`webhooks.*.secret_id`)."""
        return f"{self.resource_prefix}/webhooks/"

    @property
    def imports(self) -> str:
        """Prefix of import feeds' credentials (`imports.*.secret_id`)."""
        return f"{self.resource_prefix}/imports/"

    @property
    def client_hash_key(self) -> str:
        """The intake's key for the keyed hash that stands in for client IPs."""
        return f"{self.resource_prefix}/intake/client-hash-key"

    @property
    def tracking_id_key(self) -> str:
        """The key that turns an order's identity into its tracking id."""
        return f"{self.resource_prefix}/identity/tracking-id-key"


#: The key of pydantic's validation context that carries the prefix to check secret ids against.
CONTEXT_KEY: Final = "resource_prefix"


def validation_context(resource_prefix: str | None) -> dict[str, str]:
    """The validation context that makes the configuration check use `resource_prefix` (None: the
    default prefix)."""
    return {CONTEXT_KEY: resource_prefix or DEFAULT_RESOURCE_PREFIX}


def secret_names_in(context: object) -> SecretNames:
    """The secret names under the prefix a validation context carries, else the default prefix."""
    prefix = context.get(CONTEXT_KEY) if isinstance(context, Mapping) else None
    return SecretNames(prefix or DEFAULT_RESOURCE_PREFIX)


def _secret_names(data: dict[str, Any]) -> SecretNames:
    """For default factories: the prefix validated so far (the default when it was refused, which
    is then reported on its own)."""
    return SecretNames(data.get("resource_prefix", DEFAULT_RESOURCE_PREFIX))


def lease_floor_seconds(provider_timeout: float, rate_limit_max_wait: float) -> float:
    """The least DELIVERY_LEASE_SECONDS must exceed: a claim outlives the longest call it covers
    (a rate-limit wait, then the provider call), plus a second for the writes."""
    return provider_timeout + rate_limit_max_wait + 1.0


class _Environment(BaseModel):
    """Fields named by their variable (`validation_alias`); other variables are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False, str_strip_whitespace=True)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Variable name -> field name, for every variable this model reads."""
        return {str(info.validation_alias): name for name, info in cls.model_fields.items()}

    @classmethod
    def required_variables(cls) -> set[str]:
        """The variables without a default: the function cannot start without them."""
        return {str(info.validation_alias) for info in cls.model_fields.values() if info.is_required()}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The model from `environ` (default `os.environ`); SettingsError names each variable at
        fault. Only this model's variables are read, so no other value can reach a message."""
        source = os.environ if environ is None else environ
        values = {name: source[name] for name in cls.variables() if source.get(name, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            # A prefix-derived default is not computed once another variable is refused: that
            # variable is the problem, not the default.
            problems = [_problem(e) for e in errors if e["type"] != "default_factory_not_called"]
            raise SettingsError(problems) from None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _problem(error: ErrorDetails) -> str:
    """`NAME='value': what is wrong` for one pydantic error (its loc is the variable's name)."""
    ctx = error.get("ctx") or {}
    kind = error["type"]
    what = {
        "int_parsing": "not an integer",
        "int_from_float": "not an integer",
        "int_type": "not an integer",
        "float_parsing": "not a number",
        "float_type": "not a number",
        "finite_number": "not a finite number",
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "greater_than": f"must be more than {ctx.get('gt')}",
        "less_than_equal": f"must be at most {ctx.get('le')}",
        "less_than": f"must be less than {ctx.get('lt')}",
        "string_too_short": "must not be empty",
        "string_too_long": f"must be at most {ctx.get('max_length')} characters",
        "string_pattern_mismatch": f"must match {ctx.get('pattern')}",
    }.get(kind) or str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:  # a check across variables: its message names them
        return what
    name = str(error["loc"][0])
    if kind == "missing":
        return f"{name}: required, not set"
    return f"{name}={_shown(error['input'])}: {what}"


Seconds = Annotated[int, Field(ge=1)]


# --- every function ---------------------------------------------------------------------------------


class FunctionEnvironment(_Environment):
    """What every function reads: the stack's prefix, the outcome table, Powertools' settings."""

    resource_prefix: str = Field(
        default=DEFAULT_RESOURCE_PREFIX,
        validation_alias="RESOURCE_PREFIX",
        max_length=128,
        description="Prefix of every secret the stack's roles may read (`{prefix}/providers/`, ...).",
    )
    service_name: str = Field(
        default="orderbridge",
        validation_alias="POWERTOOLS_SERVICE_NAME",
        min_length=1,
        description="Powertools' service name (logs, metrics dimension); Powertools reads it itself.",
    )
    metrics_namespace: str = Field(
        default="Orderbridge",
        validation_alias="POWERTOOLS_METRICS_NAMESPACE",
        min_length=1,
        max_length=255,
        description="CloudWatch namespace of the functions' metrics.",
    )
    log_level: str = Field(
        default="INFO",
        validation_alias="POWERTOOLS_LOG_LEVEL",
        description="Powertools Logger level: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).",
    )
    outcome_table: str = Field(
        validation_alias="OUTCOME_TABLE", min_length=1, description="DynamoDB table of outcome records."
    )
    outcome_ttl_days: int = Field(
        default=400,
        validation_alias="OUTCOME_TTL_DAYS",
        ge=1,
        le=3650,
        description="Days an outcome record is kept (DynamoDB TTL).",
    )

    @field_validator("resource_prefix")
    @classmethod
    def _resource_prefix(cls, value: str) -> str:
        if not re.fullmatch(RESOURCE_PREFIX_PATTERN, value):
            raise ValueError("not a secret name prefix (letters, digits, _+=.@- in /-separated parts)")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
        return level

    @property
    def secret_names(self) -> SecretNames:
        """The secret ids and prefixes under this stack's RESOURCE_PREFIX."""
        return SecretNames(self.resource_prefix)


# --- the order pipeline: intake, dispatcher, importer -----------------------------------------------


class PipelineEnvironment(FunctionEnvironment):
    """What the functions that read the configuration and queue orders share: the configuration
    document, secrets, tracking ids, the order queue and its large-event bucket."""

    config_bucket: str = Field(
        validation_alias="CONFIG_BUCKET", min_length=1, description="S3 bucket of the configuration document."
    )
    config_key: str = Field(
        default="orderbridge.json",
        validation_alias="CONFIG_KEY",
        min_length=1,
        max_length=1024,
        description="S3 key of the configuration document.",
    )
    config_max_age_seconds: int = Field(
        default=60,
        validation_alias="CONFIG_MAX_AGE_SECONDS",
        ge=1,
        le=3600,
        description="Seconds a read configuration document is used before it is read again.",
    )
    secret_max_age_seconds: int = Field(
        default=300,
        validation_alias="SECRET_MAX_AGE_SECONDS",
        ge=1,
        le=86400,
        description="Seconds a read secret is used before it is read again.",
    )
    tracking_id_key_secret_id: str = Field(
        default_factory=lambda data: _secret_names(data).tracking_id_key,
        validation_alias="TRACKING_ID_KEY_SECRET_ID",
        min_length=1,
        description="Secret (id or ARN) keying tracking ids; default `{RESOURCE_PREFIX}/identity/"
        "tracking-id-key`. Never change it: every tracking id is derived with it.",
    )
    order_queue_url: str = Field(
        validation_alias="ORDER_QUEUE_URL", min_length=1, description="URL of the SQS order queue."
    )
    event_payload_bucket: str | None = Field(
        default=None,
        validation_alias="EVENT_PAYLOAD_BUCKET",
        description="S3 bucket for order events too large for SQS; unset: such events are refused.",
    )


class DispatcherEnvironment(PipelineEnvironment):
    """The dispatcher's knobs: retries, the delivery lease, provider and rate-limit waits."""

    dead_letter_queue_url: str | None = Field(
        default=None,
        validation_alias="DEAD_LETTER_QUEUE_URL",
        description="URL of the order queue's dead-letter queue (records parked for a person).",
    )
    rate_limit_table: str | None = Field(
        default=None,
        validation_alias="RATE_LIMIT_TABLE",
        description="DynamoDB table of the shared rate limits; unset: no provider or form post limit.",
    )
    max_receive_count: int = Field(
        default=5,
        validation_alias="MAX_RECEIVE_COUNT",
        ge=1,
        le=1000,
        description="Receives of a record before SQS moves it to the dead-letter queue (the template's "
        "MaxReceiveCount).",
    )
    retry_base_delay_seconds: float = Field(
        default=30.0,
        validation_alias="RETRY_BASE_DELAY_SECONDS",
        ge=0,
        le=43200,
        description="First retry delay; doubled per attempt up to RETRY_MAX_DELAY_SECONDS.",
    )
    retry_max_delay_seconds: float = Field(
        default=900.0,
        validation_alias="RETRY_MAX_DELAY_SECONDS",
        ge=0,
        le=43200,
        description="Longest retry delay (SQS allows at most 12 h of visibility timeout).",
    )
    delivery_lease_seconds: Seconds = Field(
        default=120,
        validation_alias="DELIVERY_LEASE_SECONDS",
        le=43200,
        description="Seconds a dispatcher's claim on a delivery lasts; must exceed "
        "PROVIDER_TIMEOUT_SECONDS + RATE_LIMIT_MAX_WAIT_SECONDS + 1.",
    )
    provider_timeout_seconds: float = Field(
        default=10.0,
        validation_alias="PROVIDER_TIMEOUT_SECONDS",
        gt=0,
        le=900,
        description="Timeout of one provider HTTP call.",
    )
    rate_limit_max_wait_seconds: float = Field(
        default=5.0,
        validation_alias="RATE_LIMIT_MAX_WAIT_SECONDS",
        ge=0,
        le=900,
        description="Longest wait for the provider's rate limit before the record goes back to retry.",
    )

    @model_validator(mode="after")
    def _delays_and_lease(self) -> Self:
        problems = []
        if self.retry_base_delay_seconds > self.retry_max_delay_seconds:
            problems.append(
                f"RETRY_BASE_DELAY_SECONDS ({self.retry_base_delay_seconds:g}) must not exceed "
                f"RETRY_MAX_DELAY_SECONDS ({self.retry_max_delay_seconds:g})"
            )
        floor = lease_floor_seconds(self.provider_timeout_seconds, self.rate_limit_max_wait_seconds)
        if self.delivery_lease_seconds <= floor:
            problems.append(
                f"DELIVERY_LEASE_SECONDS ({self.delivery_lease_seconds}) must exceed "
                f"PROVIDER_TIMEOUT_SECONDS + RATE_LIMIT_MAX_WAIT_SECONDS + 1 s ({floor:g})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class IntakeEnvironment(DispatcherEnvironment):
    """The intake's own knobs, on top of the dispatcher's (checkout-mode forms dispatch inline)."""

    client_hash_secret_id: str = Field(
        default_factory=lambda data: _secret_names(data).client_hash_key,
        validation_alias="CLIENT_HASH_SECRET_ID",
        min_length=1,
        description="Secret keying the hash that stands in for client IPs in form post limits; "
        "default `{RESOURCE_PREFIX}/intake/client-hash-key`.",
    )
    signing_secret_refresh_seconds: float = Field(
        default=10.0,
        validation_alias="SIGNING_SECRET_REFRESH_SECONDS",
        ge=0,
        le=3600,
        description="Least gap between re-reads of a webhook signing secret after a signature miss.",
    )
    webhook_tolerance_seconds: int = Field(
        default=300,
        validation_alias="WEBHOOK_TOLERANCE_SECONDS",
        ge=1,
        le=86400,
        description="Largest age of a signed webhook's timestamp (replay window).",
    )
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024,  # a Shopify order of 500 lines fits
        validation_alias="MAX_BODY_BYTES",
        ge=1024,
        le=10 * 1024 * 1024,  # API Gateway's payload limit
        description="Largest webhook body taken before its signature holds, in bytes: an unsigned or "
        "forged one over it is 413 BODY_TOO_LARGE (a signed one goes on, up to MAX_SIGNED_BODY_BYTES).",
    )
    max_signed_body_bytes: int = Field(
        # Lambda's synchronous invoke payload limit (6 MiB, the whole event): nothing larger reaches
        # the function on AWS, so by default every signed body that arrives is parsed. Measured
        # (peak RSS while parsed, mapped and validated): a 500-line Shopify order at the cap
        # (tests/test_oversize_webhooks.py's) about +13 MiB; nothing but `{}`s, about +150 MiB.
        default=6 * 1024 * 1024,
        validation_alias="MAX_SIGNED_BODY_BYTES",
        ge=1024,
        le=10 * 1024 * 1024,  # API Gateway's payload limit
        description="Largest signed webhook body parsed (the memory cap), in bytes: a signed one over "
        "it is recorded FAILED with BODY_TOO_LARGE and answered 202, never parsed.",
    )
    api_base_paths: tuple[str, ...] = Field(
        default=(),
        validation_alias="API_BASE_PATH",
        description="Comma-separated custom-domain base paths that prefix every route (e.g. `/shop`).",
    )

    @model_validator(mode="after")
    def _signed_cap_over_unsigned(self) -> Self:
        if self.max_signed_body_bytes < self.max_body_bytes:
            raise ValueError(
                f"MAX_SIGNED_BODY_BYTES ({self.max_signed_body_bytes}) must not be below "
                f"MAX_BODY_BYTES ({self.max_body_bytes})"
            )
        return self

    @field_validator("api_base_paths", mode="before")
    @classmethod
    def _base_paths(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        paths = [p.strip().rstrip("/") for p in value.split(",") if p.strip("/ ")]
        if any(not p.startswith("/") for p in paths):
            raise ValueError("each base path starts with / (e.g. /shop)")
        return tuple(paths)


# --- the importer and the sweeper -------------------------------------------------------------------


class ImporterEnvironment(PipelineEnvironment):
    """The importer: its state table, its bucket, and how much it does per invocation."""

    import_state_table: str = Field(
        validation_alias="IMPORT_STATE_TABLE",
        min_length=1,
        description="DynamoDB table of import checkpoints, leases and the row ledger.",
    )
    import_bucket: str | None = Field(
        default=None, validation_alias="IMPORT_BUCKET", description="S3 bucket of import files."
    )
    import_safety_margin_seconds: float = Field(
        default=20.0,
        validation_alias="IMPORT_SAFETY_MARGIN_SECONDS",
        ge=0,
        le=600,
        description="Stop this long before the invocation's time runs out (a checkpoint is written).",
    )
    import_chunk_orders: int = Field(
        default=100,
        validation_alias="IMPORT_CHUNK_ORDERS",
        ge=1,
        le=10000,
        description="Orders per commit (one ledger/outcome batch-get, ten SQS batches per 100).",
    )


class SweeperEnvironment(FunctionEnvironment):
    """The sweeper: when a RECEIVED record counts as stalled."""

    stale_received_seconds: Seconds = Field(
        default=1800,
        validation_alias="STALE_RECEIVED_SECONDS",
        le=14 * 86400,
        description="A RECEIVED record older than this has no dispatcher acting on it (NOT_STARTED).",
    )

    @property
    def stale_received(self) -> timedelta:
        return timedelta(seconds=self.stale_received_seconds)


def variable(model: type[_Environment], field: str) -> str:
    """The environment variable a model's field is read from."""
    return str(model.model_fields[field].validation_alias)


def default(model: type[_Environment], field: str) -> Any:
    """A field's default (for a prefix-derived one, under the default RESOURCE_PREFIX)."""
    info = model.model_fields[field]
    if info.default_factory is not None:
        return info.get_default(call_default_factory=True, validated_data={})
    return info.default
