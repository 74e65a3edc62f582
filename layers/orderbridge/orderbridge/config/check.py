"""Validating a configuration document as the functions do: one list of problems, each naming
where it is (destination, route, SKU, form) and the key, for the loader, `make up` and
`orderbridge config check`."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from orderbridge.exceptions import ConfigurationError
from orderbridge.models.config import PLACEHOLDER, OrderbridgeConfig, placeholders
from orderbridge.settings import validation_context

#: The placeholders the local run fills in (`orderbridge_local.system.render_config`), with a
#: stand-in of the same kind used while checking.
LOCAL_PLACEHOLDERS = {"SANDBOX_URL": "http://127.0.0.1:4010"}
#: A store setup file's block for the local run only (secrets, sandbox accounts:
#: `orderbridge_local.setup`); the local run leaves it out of the upload, so the functions never see it.
LOCAL_BLOCK = "local"


def _fill(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v) for v in value]
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: LOCAL_PLACEHOLDERS.get(m.group(0)[2:-1], m.group(0)), value)
    return value


class InvalidConfigurationError(ConfigurationError):
    """The document is not valid; `problems` lists what is wrong, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration document:\n" + "\n".join(f"- {p}" for p in problems))


def problems_of(exc: ValidationError) -> list[str]:
    """One line per problem; the document-level checks' problems (joined by "; ") split again."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(part) for part in error["loc"])
        if not loc:
            lines += message.split("; ")
        elif error["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key")
        else:
            lines.append(f"{loc}: {message}")
    return lines


def validate_document(
    document: str | bytes | dict[str, Any], *, local: bool = False, resource_prefix: str | None = None
) -> OrderbridgeConfig:
    """The validated configuration, or InvalidConfigurationError listing every problem.

    Secret ids are checked against the stack's RESOURCE_PREFIX, `resource_prefix` (None: the
    default, `orderbridge`): `{prefix}/providers/`, `{prefix}/webhooks/`, `{prefix}/imports/`.

    `${NAME}` placeholders are refused unless `local` (the local run fills them in before the
    functions read the document; on AWS nothing does, so a placeholder left is a broken URL)."""
    data: Any = document
    if not isinstance(document, dict):
        try:
            data = json.loads(document)
        except ValueError as exc:
            raise InvalidConfigurationError([f"not JSON: {exc}"]) from None
    if not isinstance(data, dict):
        raise InvalidConfigurationError([f"the document must be a JSON object, not {type(data).__name__}"])
    problems: list[str] = []
    if LOCAL_BLOCK in data:  # the local run's own block is never uploaded
        if not local:
            problems.append(
                f"{LOCAL_BLOCK}: the local run's block (its secrets and sandbox accounts); "
                "leave it out of the document for AWS"
            )
        data = {k: v for k, v in data.items() if k != LOCAL_BLOCK}
    if not local:
        problems += [
            f"{where} left in the document: only the local run fills in placeholders; write the value for AWS"
            for where in placeholders(data)
        ]
    data = _fill(data)  # checked once as a placeholder, not again as a bad URL
    if local:
        known = ", ".join("${" + name + "}" for name in LOCAL_PLACEHOLDERS)
        problems += [
            f"{where} is not filled in by the local run (only {known} is)" for where in placeholders(data)
        ]
    try:
        config = OrderbridgeConfig.model_validate(data, context=validation_context(resource_prefix))
    except ValidationError as exc:
        problems += problems_of(exc)
    else:
        problems += cross_problems(config)
    if problems:
        raise InvalidConfigurationError(problems)
    return config


def cross_problems(config: OrderbridgeConfig) -> list[str]:
    """What is wrong between valid parts of a document (each part passed its own model): one
    line each, naming every part involved. Run by `validate_document`, so by the functions'
    loader, `orderbridge config check` and the local run alike."""
    return _secrets_shared_across_providers(config) + _route_currencies(config)


def _secrets_shared_across_providers(config: OrderbridgeConfig) -> list[str]:
    """Destinations of different providers naming one `secret_id`: each provider reads its own
    keys from its secret (`credentials_model`), so one of them always finds the wrong shape.
    Destinations of the same provider may share a secret (one account, several routes)."""
    from orderbridge.providers.registry import get_provider_class

    by_secret: dict[str, list[tuple[str, str]]] = {}
    for name, destination in config.destinations.items():
        by_secret.setdefault(destination.secret_id, []).append((name, destination.provider))
    problems = []
    for secret_id, users in by_secret.items():
        providers = sorted({provider for _, provider in users})
        if len(providers) < 2:
            continue
        names = " and ".join(f"{name!r} ({provider})" for name, provider in users)
        shapes = ", ".join(f"{p} {get_provider_class(p).credentials_shape()}" for p in providers)
        problems.append(
            f"destinations {names} share secret_id {secret_id!r}, but each provider reads its own "
            f"keys ({shapes}): give each provider's destinations a secret of their own"
        )
    return problems


def _route_currencies(config: OrderbridgeConfig) -> list[str]:
    """A route with priced `items` sends orders in their currency to every destination: each must
    take it (`Provider.accepted_currencies`, the rule the adapter refuses orders by), or every
    form order on the route is refused with CURRENCY_NOT_SUPPORTED, which its buyer cannot fix."""
    from orderbridge.providers.registry import get_provider_class

    problems = []
    for route_name, route in config.routes.items():
        currency = route.currency
        if currency is None:
            continue
        for rd in route.destinations:
            destination = config.destinations[rd.destination]
            adapter = get_provider_class(destination.provider)
            accepted = adapter.accepted_currencies(
                adapter.settings_model.model_validate(destination.settings)
            )
            if accepted is not None and currency not in accepted:
                problems.append(
                    f"route {route_name!r}: its items are priced in {currency}, which destination "
                    f"{rd.destination!r} ({destination.provider}) does not take (its settings accept "
                    f"{', '.join(sorted(accepted)) or 'none'}): every order on the route would be "
                    "refused (CURRENCY_NOT_SUPPORTED); price the items in a currency every destination "
                    "takes, or add it to the destination's settings"
                )
    return problems
