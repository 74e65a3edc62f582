"""Provider credentials from Secrets Manager: cached, and re-read once when a provider says 401."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from orderbridge import clients
from orderbridge.exceptions import CredentialsError


class CredentialStore:
    """Reads JSON secrets. Values never leave this object except to build an auth header."""

    def __init__(self, *, max_age: int = 300, secretsmanager_client: Any = None) -> None:
        self._provider = SecretsProvider(
            boto3_client=secretsmanager_client or clients.client("secretsmanager")
        )
        self._max_age = max_age

    def get(self, secret_id: str, *, refresh: bool = False) -> dict[str, Any]:
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
