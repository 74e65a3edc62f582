"""Where the outcome table and the queues are, and the boto3 clients that reach them.

Each resource is resolved on its own, first match wins:

1. explicit options: `--table`, `--queue-url`, `--dlq-url`
2. `--stack-name NAME`: the CloudFormation stack's outputs `OutcomeTableName`, `OrderQueueUrl`,
   `DeadLetterQueueUrl`
3. `--local`: `.orderbridge-local.json` (written by `orderbridge-local up`) in the current
   directory or the repository root; it also gives the endpoint, the region, and dummy credentials
4. the environment: `OUTCOME_TABLE`, `ORDER_QUEUE_URL`, `DEAD_LETTER_QUEUE_URL`
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, NoRegionError, ProfileNotFound

from orderbridge.constants import TRACKING_ID_KEY_SECRET_ENV
from orderbridge.credentials import CredentialStore
from orderbridge.identity import TrackingIds
from orderbridge.outcomes import OutcomeStore
from orderbridge.settings import DEFAULT_RESOURCE_PREFIX, SecretNames
from orderbridge_ops.errors import USAGE, OpsError

STATE_FILE_NAME = ".orderbridge-local.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_CREDENTIALS = "testing"  # moto's server accepts any; boto3 only needs some

TABLE, QUEUE, DLQ = "table", "queue_url", "dlq_url"
_STACK_OUTPUTS = {TABLE: "OutcomeTableName", QUEUE: "OrderQueueUrl", DLQ: "DeadLetterQueueUrl"}
_STATE_KEYS = {TABLE: "outcome_table", QUEUE: "order_queue_url", DLQ: "dead_letter_queue_url"}
_ENV_VARS = {TABLE: "OUTCOME_TABLE", QUEUE: "ORDER_QUEUE_URL", DLQ: "DEAD_LETTER_QUEUE_URL"}
_OPTIONS = {TABLE: "--table", QUEUE: "--queue-url", DLQ: "--dlq-url"}
_NAMES = {TABLE: "outcome table", QUEUE: "order queue", DLQ: "dead-letter queue"}

#: the template parameter that names the stack's secrets (template.yaml)
RESOURCE_PREFIX_PARAMETER = "ResourcePrefix"
RESOURCE_PREFIX_ENV = "RESOURCE_PREFIX"

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=30,
)


@dataclass(frozen=True)
class Target:
    """The connection options as given on the command line."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    table: str | None = None
    queue_url: str | None = None
    dlq_url: str | None = None
    stack_name: str | None = None
    local: bool = False


def find_state_file(cwd: Path | None = None) -> Path | None:
    """`.orderbridge-local.json` in the current directory, else in the repository root."""
    for folder in (cwd or Path.cwd(), REPO_ROOT):
        candidate = folder / STATE_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_state(cwd: Path | None = None) -> dict[str, str]:
    path = find_state_file(cwd)
    if path is None:
        raise OpsError(
            f"--local: no {STATE_FILE_NAME} in the current directory or in {REPO_ROOT}",
            hint="start the local system with `make up` (or `orderbridge-local up`); it writes that file",
        )
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OpsError(f"--local: cannot read {path}: {exc}") from exc
    if not isinstance(state, dict) or "endpoint_url" not in state:
        raise OpsError(f"--local: {path} has no endpoint_url; is it an orderbridge-local state file?")
    return {k: str(v) for k, v in state.items()}


class Connection:
    """One boto3 session and one client per service, plus the resolved resource names."""

    def __init__(
        self, target: Target, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.target = target
        self._environ = os.environ if environ is None else environ
        self.state = load_state(cwd) if target.local else {}
        self.region = target.region or self.state.get("region")
        self.endpoint_url = target.endpoint_url or self.state.get("endpoint_url")
        credentials: dict[str, str] = {}
        if target.local and not target.profile:
            credentials = {"aws_access_key_id": LOCAL_CREDENTIALS, "aws_secret_access_key": LOCAL_CREDENTIALS}
        try:
            self.session = boto3.Session(profile_name=target.profile, region_name=self.region, **credentials)
        except ProfileNotFound as exc:
            raise OpsError(str(exc), hint="see `aws configure list-profiles`") from exc
        self._clients: dict[str, Any] = {}
        self._stack_outputs: dict[str, str] | None = None
        self._stack_parameters: dict[str, str] | None = None
        self._resolved: dict[str, tuple[str, str]] = {}
        self._store: OutcomeStore | None = None

    # --- clients ---------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        if service not in self._clients:
            try:
                self._clients[service] = self.session.client(
                    service,  # type: ignore[call-overload]
                    endpoint_url=self.endpoint_url,
                    config=_CONFIG,
                )
            except NoRegionError as exc:
                raise OpsError(
                    "no AWS region configured", hint="pass --region, or set AWS_REGION / a profile region"
                ) from exc
        return self._clients[service]

    @property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    def tracking_ids(self) -> TrackingIds:
        """Derives tracking ids as the functions do (the stack's tracking id key)."""
        credentials = CredentialStore(secretsmanager_client=self.client("secretsmanager"))
        return TrackingIds.from_secret(credentials, self.tracking_id_key_secret())

    def tracking_id_key_secret(self) -> str:
        """The id of the stack's tracking id key: $TRACKING_ID_KEY_SECRET_ID, else derived from the
        resource prefix (`resource_prefix`), as the functions derive it."""
        explicit = self._environ.get(TRACKING_ID_KEY_SECRET_ENV)
        if explicit:
            return explicit
        return SecretNames(resource_prefix=self.resource_prefix()).tracking_id_key

    def resource_prefix(self) -> str:
        """The stack's secret prefix: its `ResourcePrefix` parameter (--stack-name), else the local
        run's, else $RESOURCE_PREFIX, else the default (`orderbridge`)."""
        if self.target.stack_name:
            self._outputs()
            value = (self._stack_parameters or {}).get(RESOURCE_PREFIX_PARAMETER)
            if value:
                return value
        if self.target.local and self.state.get("resource_prefix"):
            return self.state["resource_prefix"]
        return self._environ.get(RESOURCE_PREFIX_ENV) or DEFAULT_RESOURCE_PREFIX

    def outcome_store(self) -> OutcomeStore:
        if self._store is None:
            self._store = OutcomeStore(table_name=self.table, dynamodb_client=self.dynamodb)
        return self._store

    # --- resources -------------------------------------------------------------------------------

    @property
    def table(self) -> str:
        return self.resolve(TABLE)[0]

    @property
    def queue_url(self) -> str:
        return self.resolve(QUEUE)[0]

    @property
    def dlq_url(self) -> str:
        return self.resolve(DLQ)[0]

    def require(self, *keys: str) -> None:
        """Resolve these resources now, so a command fails before it has changed anything."""
        for key in keys:
            self.resolve(key)

    def resolve(self, key: str) -> tuple[str, str]:
        """(value, where it came from) for TABLE, QUEUE or DLQ; OpsError if nothing gives it."""
        if key not in self._resolved:
            found = self._lookup(key)
            if found is None:
                raise OpsError(
                    f"no {_NAMES[key]} configured",
                    hint=f"pass {_OPTIONS[key]}, --stack-name NAME or --local, or set {_ENV_VARS[key]}",
                )
            self._resolved[key] = found
        return self._resolved[key]

    def _lookup(self, key: str) -> tuple[str, str] | None:
        explicit = getattr(self.target, key)
        if explicit:
            return explicit, _OPTIONS[key]
        if self.target.stack_name:
            value = self._outputs().get(_STACK_OUTPUTS[key])
            if value:
                return value, f"stack {self.target.stack_name} output {_STACK_OUTPUTS[key]}"
        if self.target.local and self.state.get(_STATE_KEYS[key]):
            return self.state[_STATE_KEYS[key]], STATE_FILE_NAME
        if self._environ.get(_ENV_VARS[key]):
            return self._environ[_ENV_VARS[key]], f"${_ENV_VARS[key]}"
        return None

    def _outputs(self) -> dict[str, str]:
        if self._stack_outputs is None:
            name = self.target.stack_name
            try:
                stacks = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
            except ClientError as exc:
                raise OpsError(
                    f"cannot read stack {name!r}: {exc.response['Error'].get('Message', exc)}",
                    exit_code=USAGE,
                    hint="check --stack-name, --region and --profile",
                ) from exc
            outputs = stacks[0].get("Outputs", []) if stacks else []
            self._stack_outputs = {o["OutputKey"]: o["OutputValue"] for o in outputs}
            parameters = stacks[0].get("Parameters", []) if stacks else []
            self._stack_parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in parameters}
        return self._stack_outputs
