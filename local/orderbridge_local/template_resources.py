"""Create the template's stateful resources (tables, queues, buckets, secrets) on any AWS endpoint.

The local run points boto3 at moto's server and calls `create_resources`, so what it runs
against is read from `template.yaml` itself rather than restated in code. Physical names are
`<prefix>-<LogicalId>` (buckets lower-cased); secrets keep their template `Name`.
Everything else in the template (functions, API, alarms, IAM) is not created here.
"""

from __future__ import annotations

import json
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
BUCKET = "AWS::S3::Bucket"
SECRET = "AWS::SecretsManager::Secret"

LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account
PLACEHOLDER_SECRET = json.dumps({"token": "REPLACE_ME"})

# CloudFormation queue properties that are SQS attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)
_TABLE_PROPERTIES = (
    "AttributeDefinitions",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "KeySchema",
    "LocalSecondaryIndexes",
    "ProvisionedThroughput",
    "StreamSpecification",
    "TimeToLiveSpecification",
)
_BUCKET_PROPERTIES = ("VersioningConfiguration",)
_SECRET_PROPERTIES = ("Name", "Description", "SecretString", "GenerateSecretString")


class TemplateError(ValueError):
    """The template uses something this module cannot resolve or create."""


# --- loading -------------------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """A SafeLoader that turns CloudFormation short-form tags into their long-form dicts."""


def _construct_intrinsic(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    key = name if name in ("Ref", "Condition") else f"Fn::{name}"
    return {key: value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """Read a CloudFormation/SAM template (YAML or JSON), short-form tags as long-form dicts."""
    with Path(path).open(encoding="utf-8") as fh:
        document = yaml.load(fh, Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return document


# --- resolving intrinsic functions -----------------------------------------------------------------


_NO_VALUE = object()


@dataclass
class _Resolver:
    """Evaluates the intrinsic functions the local resources need, against local names."""

    parameters: Mapping[str, Any]
    conditions: Mapping[str, Any]
    refs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    _condition_values: dict[str, bool] = field(default_factory=dict)

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self.conditions:
                raise TemplateError(f"unknown condition {name!r}")
            self._condition_values[name] = bool(self.resolve(self.conditions[name]))
        return self._condition_values[name]

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"cannot resolve Ref {name!r} locally")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise TemplateError(f"cannot resolve Fn::GetAtt {logical_id}.{attribute} locally") from None

    def _sub(self, spec: Any) -> str:
        if isinstance(spec, list):
            text, variables = spec[0], {k: self.resolve(v) for k, v in spec[1].items()}
        else:
            text, variables = spec, {}
        out: list[str] = []
        i = 0
        while i < len(text):
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                break
            out.append(text[i:start])
            if text.startswith("${!", start):  # literal "${"
                out.append("${")
                i = start + 3
                continue
            end = text.index("}", start)
            name = text[start + 2 : end]
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                value = self.get_att(*name.split(".", 1))
            else:
                value = self.ref(name)
            out.append(str(value))
            i = end + 1
        return "".join(out)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else [self.resolve(a) for a in arg]
                return self.get_att(parts[0], parts[1])
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                delimiter, items = arg[0], self.resolve(arg[1])
                return str(delimiter).join(str(item) for item in items)
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg))
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local resources")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}


def _parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"parameter overrides for undeclared parameters: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in overrides:
            raw: Any = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"parameter {name!r} has no default and no override")
        allowed = spec.get("AllowedValues")
        if allowed is not None and str(raw) not in {str(a) for a in allowed}:
            raise TemplateError(f"parameter {name!r}: {raw!r} is not one of {allowed}")
        if spec.get("Type") == "Number":
            text = str(raw)
            raw = float(text) if any(c in text for c in ".eE") else int(text)
        else:
            raw = str(raw)
        values[name] = raw
    return values


def _pseudo_parameters(*, region: str, prefix: str) -> dict[str, Any]:
    partition = "aws-cn" if region.startswith("cn-") else "aws"
    return {
        "AWS::Region": region,
        "AWS::AccountId": LOCAL_ACCOUNT_ID,
        "AWS::Partition": partition,
        "AWS::StackName": prefix,
        "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{LOCAL_ACCOUNT_ID}:stack/{prefix}/local",
        "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
        "AWS::NotificationARNs": [],
    }


# --- the result ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalResources:
    """What `create_resources` made: logical id -> physical name (or URL / ARN)."""

    tables: dict[str, str]
    queues: dict[str, str]
    queue_arns: dict[str, str]
    buckets: dict[str, str]
    secrets: dict[str, str]
    secret_arns: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)  # template and pseudo parameters used
    conditions: dict[str, Any] = field(default_factory=dict)  # the template's Conditions
    function_environment: dict[str, Any] = field(default_factory=dict)  # every function's, unresolved

    def environment(self) -> dict[str, str]:
        """Every function's environment variables (`functions_environment`), resolved to the local
        resources."""
        parameters = {**_pseudo_parameters(region="us-east-1", prefix="local"), **self.parameters}
        resolver = _Resolver(parameters=parameters, conditions=self.conditions)
        _register(resolver, self)
        resolved = resolver.resolve(self.function_environment)
        return {name: _env_string(value) for name, value in resolved.items()}


def functions_environment(template: dict[str, Any]) -> dict[str, Any]:
    """Every function's environment variables in one (unresolved): Globals, then each function's own.

    The local run hosts every function in one process, so it gives them the union; a variable two
    functions set to different values cannot be shared and is a `TemplateError`."""
    function_globals = (template.get("Globals") or {}).get("Function") or {}
    merged: dict[str, Any] = dict(((function_globals.get("Environment") or {}).get("Variables")) or {})
    owner: dict[str, str] = dict.fromkeys(merged, "Globals")
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        own = ((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
        for name, value in own.items():
            if name in merged and merged[name] != value:
                raise TemplateError(
                    f"{logical_id} sets {name} to {value!r} but {owner[name]} to {merged[name]!r}: "
                    "the local run gives every function one environment"
                )
            merged[name], owner[name] = value, logical_id
    return merged


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _register_table(resolver: _Resolver, logical_id: str, name: str) -> None:
    p = resolver.parameters
    resolver.refs[logical_id] = name
    resolver.attributes[(logical_id, "Arn")] = (
        f"arn:{p['AWS::Partition']}:dynamodb:{p['AWS::Region']}:{LOCAL_ACCOUNT_ID}:table/{name}"
    )


def _register_queue(resolver: _Resolver, logical_id: str, url: str, arn: str) -> None:
    resolver.refs[logical_id] = url
    resolver.attributes[(logical_id, "Arn")] = arn
    resolver.attributes[(logical_id, "QueueUrl")] = url
    resolver.attributes[(logical_id, "QueueName")] = arn.rsplit(":", 1)[-1]


def _register_bucket(resolver: _Resolver, logical_id: str, name: str) -> None:
    resolver.refs[logical_id] = name
    resolver.attributes[(logical_id, "Arn")] = f"arn:{resolver.parameters['AWS::Partition']}:s3:::{name}"
    resolver.attributes[(logical_id, "DomainName")] = f"{name}.s3.amazonaws.com"


def _register_secret(resolver: _Resolver, logical_id: str, arn: str) -> None:
    resolver.refs[logical_id] = arn  # Ref of a secret is its ARN
    resolver.attributes[(logical_id, "Id")] = arn


def _register(resolver: _Resolver, resources: LocalResources) -> None:
    """Teach `resolver` what Ref / Fn::GetAtt of each created resource return."""
    for logical_id, name in resources.tables.items():
        _register_table(resolver, logical_id, name)
    for logical_id, url in resources.queues.items():
        _register_queue(resolver, logical_id, url, resources.queue_arns[logical_id])
    for logical_id, name in resources.buckets.items():
        _register_bucket(resolver, logical_id, name)
    for logical_id, arn in resources.secret_arns.items():
        _register_secret(resolver, logical_id, arn)


# --- creating --------------------------------------------------------------------------------------


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _create_table(dynamodb: Any, name: str, props: Mapping[str, Any]) -> None:
    billing = props.get("BillingMode", "PROVISIONED")
    provisioned = billing == "PROVISIONED"

    def index(spec: Mapping[str, Any], *, throughput: bool) -> dict[str, Any]:
        out = {k: spec[k] for k in ("IndexName", "KeySchema", "Projection")}
        if throughput and provisioned:
            out["ProvisionedThroughput"] = spec["ProvisionedThroughput"]
        return out

    try:
        dynamodb.describe_table(TableName=name)
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": billing,
        }
        if provisioned:
            kwargs["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = [
                index(g, throughput=True) for g in props["GlobalSecondaryIndexes"]
            ]
        if props.get("LocalSecondaryIndexes"):
            kwargs["LocalSecondaryIndexes"] = [
                index(i, throughput=False) for i in props["LocalSecondaryIndexes"]
            ]
        stream = props.get("StreamSpecification")
        if stream and stream.get("StreamViewType"):
            kwargs["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        dynamodb.create_table(**kwargs)
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )


def _queue_attributes(props: Mapping[str, Any]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key in _QUEUE_ATTRIBUTES:
        if key not in props:
            continue
        value = props[key]
        if key == "RedrivePolicy" and isinstance(value, dict) and "maxReceiveCount" in value:
            value = {**value, "maxReceiveCount": int(value["maxReceiveCount"])}
        if isinstance(value, dict | list):
            attributes[key] = json.dumps(value)
        elif isinstance(value, bool):
            attributes[key] = "true" if value else "false"
        else:
            attributes[key] = str(value)
    return attributes


def _create_queue(sqs: Any, name: str, props: Mapping[str, Any]) -> tuple[str, str]:
    attributes = _queue_attributes(props)
    fifo = bool(props.get("FifoQueue"))
    if fifo:
        name = name if name.endswith(".fifo") else f"{name}.fifo"
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if "NonExistentQueue" not in _error_code(exc) and "QueueDoesNotExist" not in _error_code(exc):
            raise
        create_attributes = {**attributes, **({"FifoQueue": "true"} if fifo else {})}
        url = sqs.create_queue(QueueName=name, Attributes=create_attributes)["QueueUrl"]
    else:
        if attributes:  # reuse the queue, with the template's (and overrides') settings
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _create_bucket(s3: Any, name: str, props: Mapping[str, Any]) -> None:
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if _error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        region = s3.meta.region_name
        if region in (None, "us-east-1"):
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    versioning = (props.get("VersioningConfiguration") or {}).get("Status")
    if versioning:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})


def _secret_value(props: Mapping[str, Any]) -> str:
    """The value a deploy would start with: the template's SecretString, or a generated placeholder."""
    literal = props.get("SecretString")
    if isinstance(literal, str):
        return literal
    generate = props.get("GenerateSecretString")
    if isinstance(generate, dict) and generate.get("GenerateStringKey"):
        document = json.loads(generate.get("SecretStringTemplate") or "{}")
        document[generate["GenerateStringKey"]] = _secrets.token_hex(24)
        return json.dumps(document)
    return PLACEHOLDER_SECRET


def _create_secret(secretsmanager: Any, name: str, props: Mapping[str, Any], value: str | None) -> str:
    try:
        arn = secretsmanager.describe_secret(SecretId=name)["ARN"]
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        kwargs: dict[str, Any] = {"Name": name, "SecretString": value or _secret_value(props)}
        if isinstance(props.get("Description"), str):
            kwargs["Description"] = props["Description"]
        return str(secretsmanager.create_secret(**kwargs)["ARN"])
    if value is not None:
        current = secretsmanager.get_secret_value(SecretId=name).get("SecretString")
        if current != value:
            secretsmanager.put_secret_value(SecretId=name, SecretString=value)
    return str(arn)


def _queue_dependencies(logical_id: str, resources: Mapping[str, Any], queue_ids: set[str]) -> set[str]:
    """Queues that `logical_id`'s properties refer to (its dead-letter queue, typically)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "Ref" in value and value["Ref"] in queue_ids:
                found.add(value["Ref"])
            getatt = value.get("Fn::GetAtt")
            if getatt:
                target = getatt.split(".", 1)[0] if isinstance(getatt, str) else getatt[0]
                if target in queue_ids:
                    found.add(target)
            sub = value.get("Fn::Sub")
            if sub:
                text = sub[0] if isinstance(sub, list) else sub
                found.update(q for q in queue_ids if f"${{{q}}}" in text or f"${{{q}." in text)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(resources[logical_id].get("Properties", {}))
    found.discard(logical_id)
    return found


def _in_dependency_order(queue_ids: list[str], resources: Mapping[str, Any]) -> list[str]:
    pending = {q: _queue_dependencies(q, resources, set(queue_ids)) for q in queue_ids}
    ordered: list[str] = []
    while pending:
        ready = sorted(q for q, deps in pending.items() if deps <= set(ordered))
        if not ready:
            raise TemplateError(f"queues refer to each other in a cycle: {sorted(pending)}")
        ordered.extend(ready)
        for q in ready:
            del pending[q]
    return ordered


def create_resources(
    *,
    template: dict[str, Any],
    prefix: str,
    dynamodb: Any,
    sqs: Any,
    s3: Any,
    secretsmanager: Any,
    secret_values: dict[str, str] | None = None,
    parameter_overrides: dict[str, str] | None = None,
) -> LocalResources:
    """Create (or reuse) every table, queue, bucket and secret of `template` where the clients point.

    `secret_values` maps a secret's Name to the value to store; other secrets get a placeholder.
    `parameter_overrides` maps template parameter names to values (strings, as for a deploy).
    Calling it again is harmless: existing resources are reused (a reused queue gets the template's
    attributes again, so a changed MaxReceiveCount override applies; a supplied secret value is updated).
    """
    secret_values = dict(secret_values or {})
    region = dynamodb.meta.region_name or "us-east-1"
    parameters = {
        **_pseudo_parameters(region=region, prefix=prefix),
        **_parameter_values(template, parameter_overrides or {}),
    }
    resolver = _Resolver(parameters=parameters, conditions=template.get("Conditions") or {})
    all_resources: Mapping[str, Any] = template["Resources"]

    def wanted(kind: str) -> list[str]:
        return [
            logical_id
            for logical_id, resource in all_resources.items()
            if resource.get("Type") == kind
            and ("Condition" not in resource or resolver.condition(resource["Condition"]))
        ]

    def props(logical_id: str, keys: tuple[str, ...]) -> dict[str, Any]:
        # Only the properties used here are resolved: others may refer to what is not created.
        declared = all_resources[logical_id].get("Properties") or {}
        return resolver.resolve({k: declared[k] for k in keys if k in declared})

    tables: dict[str, str] = {}
    for logical_id in wanted(TABLE):
        name = f"{prefix}-{logical_id}"
        _create_table(dynamodb, name, props(logical_id, _TABLE_PROPERTIES))
        tables[logical_id] = name
        _register_table(resolver, logical_id, name)

    queues: dict[str, str] = {}
    queue_arns: dict[str, str] = {}
    for logical_id in _in_dependency_order(wanted(QUEUE), all_resources):
        url, arn = _create_queue(
            sqs, f"{prefix}-{logical_id}", props(logical_id, (*_QUEUE_ATTRIBUTES, "FifoQueue"))
        )
        queues[logical_id], queue_arns[logical_id] = url, arn
        _register_queue(resolver, logical_id, url, arn)

    buckets: dict[str, str] = {}
    for logical_id in wanted(BUCKET):
        name = f"{prefix}-{logical_id}".lower()
        _create_bucket(s3, name, props(logical_id, _BUCKET_PROPERTIES))
        buckets[logical_id] = name
        _register_bucket(resolver, logical_id, name)

    secret_names: dict[str, str] = {}
    secret_arns: dict[str, str] = {}
    for logical_id in wanted(SECRET):
        properties = props(logical_id, _SECRET_PROPERTIES)
        name = str(properties.get("Name") or f"{prefix}-{logical_id}")
        arn = _create_secret(secretsmanager, name, properties, secret_values.get(name))
        secret_names[logical_id], secret_arns[logical_id] = name, arn
        _register_secret(resolver, logical_id, arn)

    environment = functions_environment(template)
    return LocalResources(
        tables=tables,
        queues=queues,
        queue_arns=queue_arns,
        buckets=buckets,
        secrets=secret_names,
        secret_arns=secret_arns,
        parameters=parameters,
        conditions=dict(template.get("Conditions") or {}),
        function_environment=dict(environment),
    )


# --- reading back --------------------------------------------------------------------------------------


def redrive_policy(*, sqs: Any, queue_url: str) -> dict[str, Any] | None:
    """The queue's RedrivePolicy as a dict, or None when it has none."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    raw = attributes.get("Attributes", {}).get("RedrivePolicy")
    return json.loads(raw) if raw else None


def max_receive_count(*, sqs: Any, queue_url: str) -> int | None:
    """How many receives the queue allows before moving a message to its DLQ (None: no DLQ)."""
    policy = redrive_policy(sqs=sqs, queue_url=queue_url)
    return None if policy is None else int(policy["maxReceiveCount"])
