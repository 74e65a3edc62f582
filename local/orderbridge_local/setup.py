"""One file per store setup: the configuration document, plus what only the local run needs.

A store setup file is a configuration document (what is uploaded to the config bucket) with an
optional top-level `local` block, which the local run reads and leaves out of the upload
(`orderbridge.config.check.LOCAL_BLOCK`; `validate_document(..., local=True)` ignores it)::

    "local": {
      "secrets":   {"orderbridge/webhooks/my-shop": {"secrets": ["..."]}},
      "sandboxes": {"bigcommerce": {"accounts": {"store1": {"catalog": {"111": [77]}}}}}
    }

Derived, so nothing is written twice:

* a sandbox account for every destination whose `base_url` is `${SANDBOX_URL}/<provider>`, keyed
  by the provider's account setting (`SANDBOX_ACCOUNTS`: BigCommerce's `store_hash`, ...), with the
  destination's rate limit, currencies and gateways and the routes' catalog for it; an account
  listed under `local.sandboxes` is merged over the derived one (listed keys win), so list only
  what cannot be derived (a product the sandbox must not know, coupons, inventory);
* the credentials secret of every such destination: the account's `token` under the adapter's
  credential field. A secret listed under `local.secrets` wins, and the account then accepts it.

Everything else the document names by secret id (webhook signing secrets, import credentials) is
the sender's, so it must be listed under `local.secrets`; a missing one is a problem naming it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orderbridge.config.check import LOCAL_BLOCK, problems_of
from orderbridge_local.errors import StoreSetupError

SANDBOX_PLACEHOLDER = "${SANDBOX_URL}"
#: Secrets the local run creates itself (the sample feed's bearer token: orderbridge_local.feed).
SELF_PROVIDED_SECRETS = frozenset({"orderbridge/imports/demo-feed"})


@dataclass(frozen=True)
class SandboxAccountRule:
    """How one provider's sandbox account follows from a destination: the setting naming the
    account and the field of the credentials secret the adapter reads."""

    account_setting: str
    credential_field: str


SANDBOX_ACCOUNTS: dict[str, SandboxAccountRule] = {
    "bigcommerce": SandboxAccountRule("store_hash", "access_token"),
    "lana": SandboxAccountRule("shop_id", "token"),
    "komerza": SandboxAccountRule("store_id", "api_key"),
    "threekit": SandboxAccountRule("org_id", "token"),
}


class LocalBlock(BaseModel):
    """The `local` block: secrets by id; sandbox accounts as `orderbridge_sandboxes.SandboxConfig` JSON."""

    model_config = ConfigDict(extra="forbid")

    secrets: dict[str, dict[str, Any] | str] = Field(default_factory=dict)
    sandboxes: dict[str, Any] = Field(default_factory=dict)


@dataclass
class StoreSetup:
    """A checked store setup: `document` is what is uploaded (no `local` block, placeholders left),
    `secrets` every secret the local run creates (id -> JSON value or string), `sandboxes` every
    sandbox account in `orderbridge_sandboxes.SandboxConfig`'s JSON form."""

    path: Path
    document: dict[str, Any]
    secrets: dict[str, Any] = field(default_factory=dict)
    sandboxes: dict[str, Any] = field(default_factory=dict)

    def secret_text(self, secret_id: str) -> str:
        value = self.secrets[secret_id]
        return value if isinstance(value, str) else json.dumps(value)


def _strip_comments(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_comments(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [_strip_comments(v) for v in value]
    return value


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def derived_token(provider: str, account: str) -> str:
    """A stable sandbox credential for one account (the same on every start; local only).

    Lana's sandbox takes only JWT-shaped tokens, so Lana's is one (unsigned, naming the shop)."""
    digest = hashlib.sha256(f"orderbridge-local/{provider}/{account}".encode()).hexdigest()[:24]
    if provider == "lana":
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = _b64url(json.dumps({"sub": f"us_{digest[:12]}", "shop_id": account}).encode())
        return f"{header}.{claims}.{_b64url(digest.encode())}"
    return f"local-{provider}-{digest}"


def _minor(price: Any, currency: str) -> int | None:
    from orderbridge.models.money import minor_units

    try:
        return int(Decimal(str(price)).scaleb(minor_units(currency)))
    except (InvalidOperation, ValueError, ArithmeticError):  # a bad price is the model's to report
        return None


def _catalog_entries(document: dict[str, Any], destination: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for route in (document.get("routes") or {}).values():
        for target in route.get("destinations") or []:
            if isinstance(target, dict) and target.get("destination") == destination:
                entries += [e for e in (target.get("catalog") or {}).values() if isinstance(e, dict)]
    return entries


def derive_account(provider: str, destination: str, document: dict[str, Any]) -> dict[str, Any]:
    """The sandbox account a destination implies (no token): rate limit, currencies, gateways and
    the products its routes' catalogs map to, so what orderbridge sends is what the account has."""
    dest = document["destinations"][destination]
    settings = dest.get("settings") or {}
    account: dict[str, Any] = {}
    limit = dest.get("rate_limit")
    if isinstance(limit, dict) and "requests" in limit and "per_seconds" in limit:
        account["rate_limit"] = {"quota": limit["requests"], "window_ms": int(limit["per_seconds"] * 1000)}
    entries = _catalog_entries(document, destination)
    if provider == "bigcommerce":
        if settings.get("currencies"):
            account["currencies"] = list(settings["currencies"])
        products: dict[str, list[int]] = {}
        for e in entries:
            if "product_id" in e:
                variants = products.setdefault(str(e["product_id"]), [])
                if e.get("variant_id") is not None and e["variant_id"] not in variants:
                    variants.append(e["variant_id"])
        if products:
            account["catalog"] = products
    elif provider == "lana":
        currencies = settings.get("currencies") or ["USD"]
        account["currencies"] = list(currencies)
        if settings.get("gateway_id"):
            account["gateways"] = [settings["gateway_id"]]
        variants: dict[str, Any] = {}
        for e in entries:
            if "variant_id" in e:
                price = _minor(e["price"], currencies[0]) if "price" in e else None
                variants[str(e["variant_id"])] = {} if price is None else {"price": price}
        if variants:
            account["catalog"] = variants
    elif provider == "komerza":
        if settings.get("currency"):
            account["currency_code"] = settings["currency"]
        if settings.get("gateway"):
            account["gateways"] = [settings["gateway"]]
        catalog: dict[str, Any] = {}
        for e in entries:
            if "productId" in e and "variantId" in e:
                variant = {"price": str(e["price"])} if "price" in e else {}
                catalog.setdefault(str(e["productId"]), {"variants": {}})["variants"][str(e["variantId"])] = (
                    variant
                )
        if catalog:
            account["catalog"] = catalog
    elif provider == "threekit":
        configurations = sorted({str(e["configurationId"]) for e in entries if "configurationId" in e})
        if configurations:
            account["configurations"] = configurations
    return account


def _named_secrets(value: Any, where: str = "") -> list[tuple[str, str]]:
    """(where, secret id) for every `secret_id` / `*_secret_id` string in the document."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{where}.{k}" if where else str(k)
            if isinstance(v, str) and (k == "secret_id" or str(k).endswith("_secret_id")):
                found.append((here, v))
            else:
                found += _named_secrets(v, here)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _named_secrets(v, f"{where}[{i}]")
    return found


def build_setup(data: Any, path: Path) -> StoreSetup:
    """The store setup of a parsed file, or StoreSetupError listing every problem.

    The document is checked as the functions check it (`validate_document(..., local=True)`),
    the `local` block by its model, every derived or listed sandbox account by the provider
    sandbox's own account model, and every secret the document names must be derived or listed."""
    from orderbridge.config import InvalidConfigurationError, validate_document
    from orderbridge_sandboxes.registry import PROVIDERS, load_provider

    name = path.name
    if not isinstance(data, dict):
        raise StoreSetupError([f"{name}: the file must be a JSON object, not {type(data).__name__}"])
    problems: list[str] = []
    document = {k: v for k, v in data.items() if k != LOCAL_BLOCK}
    try:
        validate_document(document, local=True)
    except InvalidConfigurationError as exc:
        problems += [f"{name}: {p}" for p in exc.problems]
    block = LocalBlock()
    try:
        block = LocalBlock.model_validate(_strip_comments(data.get(LOCAL_BLOCK) or {}))
    except ValidationError as exc:
        problems += [f"{name}: {LOCAL_BLOCK}.{p}" for p in problems_of(exc)]
    if problems:  # derivation reads the document's shapes; only a valid one is derived from
        raise StoreSetupError(problems)

    secrets: dict[str, Any] = dict(block.secrets)
    listed = {
        p: dict((c or {}).get("accounts") or {}) for p, c in block.sandboxes.items() if isinstance(c, dict)
    }
    sandboxes: dict[str, Any] = copy.deepcopy(block.sandboxes)
    for dest_name, dest in document.get("destinations", {}).items():
        base_url = str(dest.get("base_url") or "")
        if not base_url.startswith(SANDBOX_PLACEHOLDER + "/"):
            continue
        where = f"{name}: destination {dest_name!r}"
        provider = base_url[len(SANDBOX_PLACEHOLDER) + 1 :].split("/")[0]
        rule = SANDBOX_ACCOUNTS.get(provider)
        account_id = (dest.get("settings") or {}).get(rule.account_setting) if rule else None
        if rule is None or not isinstance(account_id, str):
            if dest["secret_id"] not in secrets:
                known = ", ".join(f"{p} by settings.{r.account_setting}" for p, r in SANDBOX_ACCOUNTS.items())
                problems.append(
                    f"{where}: no sandbox account can be derived for {base_url!r} (known: {known}); "
                    f"list secret {dest['secret_id']!r} under {LOCAL_BLOCK}.secrets and the account "
                    f"under {LOCAL_BLOCK}.sandboxes"
                )
            continue
        given = copy.deepcopy(listed.get(provider, {}).get(account_id) or {})
        account = {**derive_account(provider, dest_name, document), **given}
        listed_secret = secrets.get(dest["secret_id"])
        credential = listed_secret.get(rule.credential_field) if isinstance(listed_secret, dict) else None
        if credential is not None and "token" in given and given["token"] != credential:
            problems.append(
                f"{where}: secret {dest['secret_id']!r} ({rule.credential_field}) is not the token "
                f"{LOCAL_BLOCK}.sandboxes.{provider}.accounts.{account_id} accepts: list one of them only"
            )
        account["token"] = credential or given.get("token") or derived_token(provider, account_id)
        if listed_secret is None:
            secrets[dest["secret_id"]] = {rule.credential_field: account["token"]}
        accounts = sandboxes.setdefault(provider, {}).setdefault("accounts", {})
        accounts[account_id] = account

    for where, secret_id in _named_secrets(document):
        if secret_id not in secrets and secret_id not in SELF_PROVIDED_SECRETS:
            problems.append(
                f"{name}: {where} names secret {secret_id!r}, which has no value: list it under "
                f"{LOCAL_BLOCK}.secrets (only a sandbox destination's credentials are derived)"
            )
    specs = {p: load_provider(ref) for p, ref in PROVIDERS.items()}
    for provider, config in _strip_comments(sandboxes).items():
        if provider not in specs:
            problems.append(
                f"{name}: {LOCAL_BLOCK}.sandboxes.{provider}: no such sandbox ({', '.join(specs)})"
            )
            continue
        for account_id, account in (config.get("accounts") or {}).items():
            try:
                specs[provider].account_model.model_validate(account)
            except ValidationError as exc:
                problems += [
                    f"{name}: sandbox account {provider}/{account_id}: {p}" for p in problems_of(exc)
                ]
    if problems:
        raise StoreSetupError(problems)
    return StoreSetup(path=path, document=document, secrets=secrets, sandboxes=sandboxes)


def load_setup(path: Path) -> StoreSetup:
    """Read and check a store setup file (StoreSetupError: what is wrong, one line each)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreSetupError([f"{path}: {exc}"]) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StoreSetupError([f"{path.name}: not JSON: {exc}"]) from None
    return build_setup(data, path)


def check_setup(path: Path) -> list[str]:
    """What is wrong with a store setup file, one line each (empty: nothing)."""
    try:
        load_setup(path)
    except StoreSetupError as exc:
        return exc.problems
    return []
