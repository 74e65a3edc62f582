"""Configuration from one JSON document in S3, cached with Powertools' parameters machinery."""

from __future__ import annotations

import logging
import weakref
from typing import Any, ClassVar

from aws_lambda_powertools.utilities.parameters.base import BaseProvider

from orderbridge import clients
from orderbridge.config.check import InvalidConfigurationError, validate_document
from orderbridge.exceptions import ConfigurationError
from orderbridge.models.config import OrderbridgeConfig

logger = logging.getLogger(__name__)


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
    """The validated configuration, re-read at most every `max_age` seconds.

    A new document that is not valid is refused whole (no part of it is used): the store keeps
    serving the last good one and logs the problems at ERROR, once per refused document. With no
    good document yet, `load` raises ConfigurationError listing the problems.
    """

    #: Every store of this process, so a local run that has just uploaded a document can tell them
    #: (`ConfigStore.refresh_all`); on AWS a change is picked up when `max_age` runs out.
    _instances: ClassVar[weakref.WeakSet[ConfigStore]] = weakref.WeakSet()

    def __init__(
        self,
        *,
        bucket: str,
        key: str,
        max_age: int = 60,
        s3_client: Any = None,
        resource_prefix: str | None = None,
    ) -> None:
        ConfigStore._instances.add(self)
        self._resource_prefix = resource_prefix  # secret ids are checked against it (None: default)
        self._provider = S3ConfigProvider(bucket=bucket, s3_client=s3_client)
        self._key = key
        self._max_age = max_age
        self._raw: str | None = None
        self._parsed: OrderbridgeConfig | None = None
        self._refused: tuple[str, InvalidConfigurationError] | None = None

    def refresh(self) -> None:
        """Forget the cached document: the next `load` reads it again."""
        self._provider.clear_cache()

    @classmethod
    def refresh_all(cls) -> None:
        """Every store of this process reads the document again on its next `load`."""
        for store in list(cls._instances):
            store.refresh()

    def load(self) -> OrderbridgeConfig:
        try:
            raw = self._provider.get(self._key, max_age=self._max_age)
        except Exception as exc:  # botocore errors, missing object
            if _is_missing_object(exc):
                where = f"s3://{self._provider.bucket}/{self._key}"
                raise ConfigurationError(
                    f"no configuration was uploaded at {where}: check a document with "
                    f"`orderbridge config check FILE`, then upload it with `aws s3 cp FILE {where}`"
                ) from exc
            raise ConfigurationError(f"cannot read configuration s3://.../{self._key}: {exc}") from exc
        assert isinstance(raw, str)
        if raw == self._raw and self._parsed is not None:
            return self._parsed
        if self._refused is not None and self._refused[0] == raw:
            error = self._refused[1]
        else:
            try:
                self._parsed = validate_document(raw, resource_prefix=self._resource_prefix)
            except InvalidConfigurationError as exc:
                error = exc
                self._refused = (raw, exc)
                logger.error(
                    "configuration s3://.../%s refused (%s); %s",
                    self._key,
                    "; ".join(exc.problems),
                    "keeping the last good one" if self._parsed is not None else "no good one to keep",
                )
            else:
                self._raw, self._refused = raw, None
                return self._parsed
        if self._parsed is not None:
            return self._parsed
        raise error


def _is_missing_object(exc: BaseException) -> bool:
    """S3's NoSuchKey (or a 404) anywhere in the chain: Powertools wraps it in GetParameterError."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        error = getattr(seen, "response", None)
        if isinstance(error, dict) and (error.get("Error") or {}).get("Code") in {"NoSuchKey", "404"}:
            return True
        seen = seen.__cause__ or seen.__context__
    return False
