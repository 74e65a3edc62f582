"""Exceptions raised by the orderbridge core. Each names what went wrong, never a secret."""


class OrderbridgeError(Exception):
    """Base class for every orderbridge error."""


class ConfigurationError(OrderbridgeError):
    """The configuration document is missing, malformed or names something that does not exist."""


class UnknownRouteError(ConfigurationError):
    """An event names a route the configuration does not define."""


class UnknownProviderError(ConfigurationError):
    """A destination names a provider that no adapter is registered for."""


class SettingsError(OrderbridgeError):
    """A function's environment variable is missing or bad (`orderbridge.settings`): the function
    cannot start. `problems` has one line per variable, `NAME='value': what is wrong`; the message
    joins them. No variable holds a secret (only secret ids)."""

    code = "INVALID_ENVIRONMENT"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class CredentialsError(OrderbridgeError):
    """Credentials for a destination could not be loaded (missing secret, bad JSON, service down)."""


class CredentialsNotSetError(CredentialsError):
    """The secret still holds the placeholder the deploy created (`{"placeholder": true, ...}`):
    nobody has set its value yet. Not transient: calls with it would only be refused."""

    code = "CREDENTIALS_NOT_SET"

    def __init__(self, secret_id: str) -> None:
        super().__init__(
            f"secret {secret_id!r} still holds the placeholder the deploy created: set its value "
            f"(aws secretsmanager put-secret-value --secret-id {secret_id} --secret-string '<JSON>')"
        )
        self.secret_id = secret_id


class CredentialsMalformedError(CredentialsError):
    """The secret was read but lacks a key the provider's adapter needs (or the key is unusable):
    the stored value has the wrong shape, so no request is built with it. Names the keys and the
    expected shape, never a value. The operator can fix it: deliveries retry (with backoff)."""

    code = "CREDENTIALS_MALFORMED"


class RequestRejectedError(OrderbridgeError):
    """The adapter refused to build a provider request the provider would reject anyway.

    Raised before any HTTP call, so the delivery is a permanent failure with a clear reason.
    `field` is the canonical order path the refusal is about (`shipping_address.province`,
    `lines.2.sku`, `buyer.email`), None when it is about the order as a whole or the provider's
    own request: the intake names it back to a form's sender in the sender's own terms.
    """

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class DeliveryRetryableError(OrderbridgeError):
    """A delivery failed in a way that another attempt may fix; the SQS record goes back."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeConflictError(OrderbridgeError):
    """A conditional write on the outcome table lost a race with another writer."""


class IntakeUnavailableError(OrderbridgeError):
    """The intake cannot take an order right now (queue, table or key unreachable): 503, retry.

    Retrying is always safe: the order's tracking id is derived from it, so a retry names the
    same order.
    """


class ReviewError(OrderbridgeError):
    """An operator's review cannot be recorded: the delivery is not in doubt, or says too little."""


class OrderConflictError(OrderbridgeError):
    """An order arrived again under the same identity with different content.

    `fields` names the top-level order fields that differ from the first copy.
    """

    def __init__(self, tracking_id: str, fields: list[str]) -> None:
        super().__init__(f"order {tracking_id} was already received with different {', '.join(fields)}")
        self.tracking_id = tracking_id
        self.fields = fields


class SignatureError(OrderbridgeError):
    """A webhook signature is missing, malformed, expired or does not match."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class IntakeRejectedError(OrderbridgeError):
    """A client's request to the intake is refused: always a 4xx with a stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.headers = headers or {}  # e.g. Retry-After on a 429

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "fields": self.fields}}


class AmbiguousFormFieldError(ValueError):
    """A form post names one field twice, or as both a value and a group (`items=3` beside
    `items[0][sku]`): which one the buyer meant is unknown. `field` is the name as posted; the
    intake answers 400 MALFORMED_BODY with it in `fields` (code `ambiguous_field`)."""

    code = "ambiguous_field"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
