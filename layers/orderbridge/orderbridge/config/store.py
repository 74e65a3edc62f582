"""Configuration from one JSON document in S3, cached with Powertools' parameters machinery."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters.base import BaseProvider
from pydantic import ValidationError

from orderbridge import clients
from orderbridge.exceptions import ConfigurationError
from orderbridge.models.config import OrderbridgeConfig


class S3ConfigProvider(BaseProvider):
    """A Powertools parameters provider that reads objects from one S3 bucket."""

    def __init__(self, *, bucket: str, s3_client: Any = None) -> None:
        self.client = s3_client or clients.client("s3")
        super().__init__(client=self.client)
        self.bucket = bucket

    def _get(self, name: str, **sdk_options: Any) -> str:
        response = self.client.get_object(Bucket=self.bucket, Key=name, **sdk_options)
        return response["Body"].read().decode("utf-8")

    def _get_multiple(self, path: str, **sdk_options: Any) -> dict[str, str]:
        raise NotImplementedError("the configuration is one document")


class ConfigStore:
    """The validated configuration, re-read at most every `max_age` seconds."""

    def __init__(self, *, bucket: str, key: str, max_age: int = 60, s3_client: Any = None) -> None:
        self._provider = S3ConfigProvider(bucket=bucket, s3_client=s3_client)
        self._key = key
        self._max_age = max_age
        self._raw: str | None = None
        self._parsed: OrderbridgeConfig | None = None

    def load(self) -> OrderbridgeConfig:
        try:
            raw = self._provider.get(self._key, max_age=self._max_age)
        except Exception as exc:  # botocore errors, missing object
            raise ConfigurationError(f"cannot read configuration s3://.../{self._key}: {exc}") from exc
        assert isinstance(raw, str)
        if raw != self._raw or self._parsed is None:
            try:
                self._parsed = OrderbridgeConfig.model_validate(json.loads(raw))
            except (ValueError, ValidationError) as exc:
                raise ConfigurationError(f"invalid configuration document: {exc}") from exc
            self._raw = raw
        return self._parsed
