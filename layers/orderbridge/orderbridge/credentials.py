"""Provider credentials from Secrets Manager: cached, and re-read once when a provider says 401.

A secret whose JSON object has `"placeholder": true` (`PLACEHOLDER_KEY`) is not set: the template
creates every secret that way until the operator puts the real value. Reading one raises
CredentialsNotSetError, so no call is made with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from orderbridge import clients
from orderbridge.exceptions import CredentialsError, CredentialsNotSetError

#: The key that marks a secret as a placeholder (template.yaml `SecretStringTemplate`).
PLACEHOLDER_KEY = "placeholder"


def is_placeholder(value: Any) -> bool:
    """Whether a secret's decoded value is the deploy's placeholder (`{"placeholder": true, ...}`)."""
    return isinstance(value, Mapping) and value.get(PLACEHOLDER_KEY) is True


class CredentialStore:
    """Reads JSON secrets. Values never leave this object except to build an auth header."""

    def __init__(self, *, max_age: int = 300, secretsmanager_client: Any = None) -> None:
        self._provider = SecretsProvider(
            boto3_client=secretsmanager_client or clients.client("secretsmanager")
        )
        self._max_age = max_age

    def get(self, secret_id: str, *, refresh: bool = False) -> dict[str, Any]:
        """The secret's JSON object (a plain string is `{"token": <it>}`), cached `max_age` s.

        Raises CredentialsNotSetError while it is a placeholder: a cached placeholder is read again
        first, so a value set since counts at once. CredentialsError when it cannot be read or is
        not a JSON object. Messages name the secret id, never a value."""
        value = self._read(secret_id, refresh=refresh)
        if is_placeholder(value) and not refresh:
            value = self._read(secret_id, refresh=True)
        if is_placeholder(value):
            raise CredentialsNotSetError(secret_id)
        return value

    def _read(self, secret_id: str, *, refresh: bool) -> dict[str, Any]:
        try:
            raw = self._provider.get(secret_id, max_age=self._max_age, force_fetch=refresh)
        except Exception as exc:
            # The exception text names the secret id, never its value.
            raise CredentialsError(f"cannot read secret {secret_id!r}: {type(exc).__name__}") from exc
        try:
            value = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            value = {"token": raw}
        if not isinstance(value, dict):
            raise CredentialsError(f"secret {secret_id!r} is not a JSON object")
        return value
