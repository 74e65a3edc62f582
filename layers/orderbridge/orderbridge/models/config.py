"""The configuration document: routes, destinations, forms, webhook sources and import sources.

It lives in S3 (one JSON document), not in code, so an operator changes a route without a deploy.
"""

from __future__ import annotations

import difflib
import re
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from orderbridge.imports.config import ImportSource
from orderbridge.models import money
from orderbridge.models.names import Name, Shop
from orderbridge.settings import SecretNames, secret_names_in

#: `${NAME}` left in a document: the local run fills these in (`${SANDBOX_URL}`); AWS never does.
PLACEHOLDER = re.compile(r"\$\{[A-Za-z0-9_]*\}")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _currency_code(value: str) -> str:
    code = value.strip().upper()
    try:
        money.minor_units(code)
    except money.UnknownCurrencyError:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code") from None
    return code


#: An ISO 4217 code (any case in the document; upper case once validated).
CurrencyCode = Annotated[str, AfterValidator(_currency_code)]


class ProviderSettings(_Config):
    """Base of a provider's `destination.settings` model (`Provider.settings_model`): unknown keys
    are refused at load time, naming the destination and the key."""


class CatalogEntry(_Config):
    """Base of a provider's route catalog entry model (`Provider.catalog_entry_model`): what the
    adapter reads for one SKU. Validated with `context={"settings": <the destination's settings
    model>}` so an entry can check itself against its destination (a price in its currency)."""


def _keys_of(model: type[BaseModel]) -> list[str]:
    keys: list[str] = []
    for name, info in model.model_fields.items():
        keys.append(name)
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        if isinstance(alias, str):
            keys.append(alias)
        elif choices:
            keys += [c for c in choices if isinstance(c, str)]
    return sorted(set(keys))


def describe_errors(exc: ValidationError, where: str, model: type[BaseModel]) -> list[str]:
    """One line per problem, naming `where` and the key: an unknown key with the key it most likely
    means (`productid` -> `product_id`) and the keys allowed."""
    lines = []
    allowed = _keys_of(model)
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            key = str(error["loc"][-1])
            near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) or difflib.get_close_matches(
                key.lower().replace("-", "_"), [k.lower() for k in allowed], n=1, cutoff=0.6
            )
            hint = f"did you mean {near[0]!r}? " if near else ""
            lines.append(f"{where}: unknown key {loc!r} ({hint}allowed: {', '.join(allowed)})")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}{' ' + loc if loc else ''}: {message}")
    return lines


def placeholders(value: Any, path: str = "") -> list[str]:
    """Where `${...}` placeholders are left in a document: `path: ${NAME}` for each."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += placeholders(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += placeholders(item, f"{path}[{index}]")
    elif isinstance(value, str):
        found += [f"{path}: {m}" for m in PLACEHOLDER.findall(value)]
    return found


class Limit(_Config):
    """A GCRA limit: `requests` per `per_seconds`, of which `burst` may come back to back."""

    requests: int = Field(ge=1, description="Requests allowed per `per_seconds`.")
    per_seconds: float = Field(gt=0)
    burst: int = Field(default=1, ge=1, description="Requests that may go back to back.")


class RateLimit(Limit):
    """The provider account's request limit, shared by every dispatcher instance."""

    headroom: float = Field(default=0.97, gt=0, le=1, description="Fraction of the limit to use.")


class Destination(_Config):
    """One provider account orders can go to."""

    provider: Name
    secret_id: str = Field(description="Secrets Manager id of the account's credentials (JSON).")
    base_url: AnyHttpUrl | None = Field(default=None, description="Override, e.g. a sandbox.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Provider-specific, e.g. store_hash.")
    rate_limit: RateLimit | None = None
    reconcile_window_seconds: float | None = Field(
        default=None,
        gt=0,
        le=43200,
        description="After a create whose answer never came, how long the provider may still create "
        "the order: no resend until it has passed, only lookups. Default: the provider's own "
        "(`Provider.reconcile_window_seconds`).",
    )


class RouteDestination(_Config):
    destination: Name
    catalog: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="SKU -> provider product reference for this destination."
    )


class CatalogItem(_Config):
    """What a storefront form on a route shows and charges for one SKU: the server's price.

    A form's order takes its lines' `unit_price` and its `currency` from here, never from the
    buyer (`orderbridge.intake.pricing`). Write amounts as strings ("15.00"): exact decimals.
    """

    name: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00-\x1f\x7f-\x9f]+$",
        description='Shown to the buyer and sent as the line\'s name, e.g. "Blue tee (M)".',
    )
    unit_price: Decimal = Field(
        ge=0,
        le=Decimal("1e15"),
        allow_inf_nan=False,
        description="Price of one unit in `currency`, at most the currency's minor units (USD 2, JPY 0).",
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD.")

    @model_validator(mode="after")
    def _fits_currency(self) -> CatalogItem:
        try:
            if not money.fits(self.unit_price, self.currency):
                raise ValueError(
                    f"unit_price {self.unit_price} has more decimals than {self.currency} allows "
                    f"({money.minor_units(self.currency)})"
                )
        except money.UnknownCurrencyError as exc:
            raise ValueError(str(exc)) from None
        return self


SkuKey = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class Route(_Config):
    """Which destinations an order goes to."""

    destinations: list[RouteDestination] = Field(min_length=1)
    items: dict[SkuKey, CatalogItem] = Field(
        default_factory=dict,
        description="SKU -> name, unit price and currency that the route's storefront forms show and "
        "charge, in the order the form lists them. Kept apart from the destinations' catalogs (provider "
        "references): one price per SKU however many destinations the route has, and nothing an adapter "
        "reads changes. Every SKU here must be in every destination's catalog; all share one currency. "
        "Empty: the route's forms list the catalogs' SKUs without prices and orders carry none.",
    )

    @property
    def currency(self) -> str | None:
        """The one currency of `items` (None when the route has no priced items)."""
        return next((item.currency for item in self.items.values()), None)

    @model_validator(mode="after")
    def _items_are_sellable(self) -> Route:
        problems = []
        currencies = sorted({item.currency for item in self.items.values()})
        if len(currencies) > 1:
            problems.append(f"items must share one currency, found {', '.join(currencies)}")
        for rd in self.destinations:
            missing = [sku for sku in self.items if sku not in rd.catalog]
            if missing:
                problems.append(f"items {missing} are not in destination {rd.destination!r}'s catalog")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class FormRateLimits(_Config):
    """Abuse limits of a public form; `null` switches one off."""

    per_client: Limit | None = Field(
        default_factory=lambda: Limit(requests=20, per_seconds=60, burst=10),
        description="One buyer (source IP): a few orders a minute is plenty; bots get 429.",
    )
    per_form: Limit | None = Field(
        default_factory=lambda: Limit(requests=600, per_seconds=60, burst=100),
        description="All clients of the form together: caps a distributed flood of one form key.",
    )


def normalize_origin(value: str, *, strict: bool = False) -> str:
    """An origin as browsers serialize it in the `Origin` header (RFC 6454): lower-case scheme and
    host, no default port, no path. `strict` (configuration): anything that is not an http(s)
    origin is an error, so a typo cannot silently refuse every browser post."""
    from urllib.parse import urlsplit

    raw = value.strip()
    parts = urlsplit(raw)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.username
        or parts.password
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or port == -1
    ):
        if strict:
            raise ValueError(
                f"{value!r} is not an origin: write scheme://host[:port], e.g. https://shop.example"
            )
        return raw.lower()
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


class FormConfig(_Config):
    """A public storefront form, identified by its form key."""

    route: Name
    source: Name
    shop: Shop = None
    allowed_origins: list[Annotated[str, AfterValidator(lambda v: normalize_origin(v, strict=True))]] = Field(
        default_factory=list,
        description="Origins (`https://shop.example`, a port if any) whose pages may post to the form; "
        "written any way (`HTTPS://Shop.example/`), kept as browsers send them.",
    )
    mode: Literal["queued", "checkout"] = Field(
        default="queued",
        description="checkout: create the order while the buyer waits and answer with the provider's "
        "hosted checkout (303 for a plain form, JSON for fetch); falls back to queued (202) on a timeout.",
    )
    checkout_timeout_seconds: float = Field(default=8.0, gt=0, le=25)
    rate_limit: FormRateLimits = Field(
        default_factory=lambda: FormRateLimits(),
        description="Posts allowed per client (keyed hash of the source IP) and per form key, "
        "counted across every intake instance; over it: 429 RATE_LIMITED with Retry-After.",
    )


def _webhook_source_models() -> tuple[type[BaseModel], ...]:
    from orderbridge.sources.registry import settings_models

    return settings_models()


#: A storefront platform that pushes signed order events: one settings model per `scheme`
#: (`orderbridge.sources`), each accepting only the settings its scheme reads.
WebhookSource = Annotated[
    Union[_webhook_source_models()],  # noqa: UP007 - built from the registry at import
    Field(discriminator="scheme"),
]


class OrderbridgeConfig(_Config):
    destinations: dict[Name, Destination]
    routes: dict[Name, Route]
    forms: dict[Annotated[str, StringConstraints(pattern=r"^fk_[A-Za-z0-9]{8,64}$")], FormConfig] = Field(
        default_factory=dict
    )
    webhooks: dict[Name, WebhookSource] = Field(default_factory=dict)
    imports: dict[Name, ImportSource] = Field(
        default_factory=dict,
        description="Cron-triggered import sources (S3 files, HTTP feeds): docs/imports.md.",
    )

    @model_validator(mode="after")
    def _references_exist(self, info: ValidationInfo) -> OrderbridgeConfig:
        problems: list[str] = []
        for name, route in self.routes.items():
            problems += [
                f"route {name!r} names unknown destination {rd.destination!r}"
                for rd in route.destinations
                if rd.destination not in self.destinations
            ]
        for key, form in self.forms.items():
            if form.route not in self.routes:
                problems.append(f"form {key!r} names unknown route {form.route!r}")
        for name, hook in self.webhooks.items():
            for route in (hook.route, hook.test_route):
                if route is not None and route not in self.routes:
                    problems.append(f"webhook source {name!r} names unknown route {route!r}")
        for name, source in self.imports.items():
            if source.route not in self.routes:
                problems.append(f"import source {name!r} names unknown route {source.route!r}")
        problems += self._secret_problems(secret_names_in(info.context))
        problems += self._provider_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _secret_problems(self, names: SecretNames) -> list[str]:
        """Secret ids outside the prefixes the functions' roles may read (template.yaml's
        `GetSecretValue` policies, under RESOURCE_PREFIX; validation context `resource_prefix`,
        default `orderbridge`): any other id works on moto and is AccessDenied on AWS."""
        why = (
            "the functions' roles may read only secrets under it (template.yaml): "
            "any other id is AccessDenied on AWS"
        )
        problems = [
            f"destination {name!r}: secret_id {d.secret_id!r} must start with {names.providers!r}: {why}"
            for name, d in self.destinations.items()
            if not d.secret_id.startswith(names.providers)
        ]
        problems += [
            f"webhook source {name!r}: secret_id {h.secret_id!r} must start with {names.webhooks!r}: {why}"
            for name, h in self.webhooks.items()
            if not h.secret_id.startswith(names.webhooks)
        ]
        # A signature proves who sent a delivery only if its secret belongs to one source: with a
        # shared secret, one delivery posted to both sources is valid twice, as two orders.
        by_secret: dict[str, list[str]] = {}
        for name, h in self.webhooks.items():
            by_secret.setdefault(h.secret_id, []).append(name)
        problems += [
            f"webhook sources {', '.join(repr(n) for n in names)} share secret_id {secret!r}: "
            "give each source its own signing secret, so a delivery is valid at one source only"
            for secret, names in by_secret.items()
            if len(names) > 1
        ]
        return problems

    def _provider_problems(self) -> list[str]:
        """Each destination's provider is registered; its settings and every route catalog entry
        for it are what the provider's adapter reads (`settings_model`, `catalog_entry_model`)."""
        from orderbridge.providers.registry import provider_models, registered_providers

        problems: list[str] = []
        validated: dict[str, BaseModel | None] = {}
        entry_models: dict[str, type[BaseModel] | None] = {}
        for name, destination in self.destinations.items():
            models = provider_models(destination.provider)
            if models is None:
                problems.append(
                    f"destination {name!r}: unknown provider {destination.provider!r} "
                    f"(known: {', '.join(registered_providers())})"
                )
                continue
            settings_model, entry_models[name] = models
            validated[name] = None
            if settings_model is not None:
                try:
                    validated[name] = settings_model.model_validate(destination.settings)
                except ValidationError as exc:
                    problems += describe_errors(exc, f"destination {name!r} settings", settings_model)
        for route_name, route in self.routes.items():
            for rd in route.destinations:
                entry_model = entry_models.get(rd.destination)
                if entry_model is None:
                    continue
                context = {"settings": validated.get(rd.destination)}
                for sku, entry in rd.catalog.items():
                    where = f"route {route_name!r} destination {rd.destination!r} catalog SKU {sku!r}"
                    try:
                        entry_model.model_validate(entry, context=context)
                    except ValidationError as exc:
                        problems += describe_errors(exc, where, entry_model)
        return problems
