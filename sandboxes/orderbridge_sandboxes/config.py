"""Sandbox configuration: per provider, the accounts it knows and the credentials they accept.

The JSON form (`config/sandboxes.json`) is keyed by provider name; keys starting with `_` are
comments and ignored at every level::

    {
      "bigcommerce": {
        "rate_limit": {"quota": 150, "window_ms": 30000},
        "accounts": {
          "demo123": {
            "token": "local-bigcommerce-token",
            "rate_limit": {"quota": 150, "window_ms": 30000},
            "catalog": {"111": [77, 78], "112": []}
          }
        }
      }
    }

`{"providers": {...}}` is accepted too. An account always has a `token` (the credential it
accepts; `tokens` lists more, e.g. during a rotation) and an optional `rate_limit`; anything else
is provider-specific and validated by the provider's own account model (a subclass of
`AccountConfig`) when the provider is mounted.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_QUOTA = 150
DEFAULT_WINDOW_MS = 30_000


def strip_comments(value: Any) -> Any:
    """Drop every mapping key starting with `_` (JSON has no comments), recursively."""
    if isinstance(value, dict):
        return {k: strip_comments(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [strip_comments(v) for v in value]
    return value


class RateLimitConfig(BaseModel):
    """A fixed-window quota: `quota` requests per `window_ms` milliseconds."""

    model_config = ConfigDict(extra="forbid")

    quota: int = Field(default=DEFAULT_QUOTA, ge=1)
    window_ms: int = Field(default=DEFAULT_WINDOW_MS, ge=1)


class AccountConfig(BaseModel):
    """One account (store, shop, org) at a provider. Providers subclass it for their own settings."""

    model_config = ConfigDict(extra="allow")

    token: str = Field(min_length=1, description="The credential the account accepts.")
    tokens: list[str] = Field(default_factory=list, description="More accepted credentials.")
    rate_limit: RateLimitConfig | None = None

    def accepts(self, credential: str | None) -> bool:
        """Whether `credential` is one this account accepts (constant-time comparison)."""
        if not credential:
            return False
        given = credential.encode()
        return any(hmac.compare_digest(given, t.encode()) for t in (self.token, *self.tokens))

    def masked(self) -> dict[str, Any]:
        """The account as JSON with its credentials masked."""
        data = self.model_dump(mode="json")
        data["token"] = mask(self.token)
        data["tokens"] = [mask(t) for t in self.tokens]
        return data


def mask(secret: str) -> str:
    return f"<{len(secret)} chars>"


class ProviderConfig(BaseModel):
    """One provider: its accounts (keyed by store hash / store id / shop id) and default rate limit."""

    model_config = ConfigDict(extra="allow")

    accounts: dict[str, AccountConfig] = Field(default_factory=dict)
    rate_limit: RateLimitConfig | None = None


class SandboxConfig(BaseModel):
    """Every provider's configuration. Providers not mentioned are mounted with no accounts."""

    model_config = ConfigDict(extra="forbid")

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = strip_comments(data)
        if "providers" in data:
            return data
        return {"providers": data}

    @classmethod
    def from_json(cls, text: str) -> SandboxConfig:
        return cls.model_validate(json.loads(text))


def load_config(path: str | Path) -> SandboxConfig:
    """Read a sandbox configuration file (JSON)."""
    return SandboxConfig.from_json(Path(path).read_text(encoding="utf-8"))


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`base` updated by `patch`, recursing into mappings; a `None` in `patch` removes the key."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
