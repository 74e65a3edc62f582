"""template.yaml: it lints, SAM translates it, and the local run builds the same resources from it."""

from __future__ import annotations

import ast
import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from orderbridge import constants
from orderbridge_local.template_resources import (
    LocalResources,
    create_resources,
    functions_environment,
    load_template,
    max_receive_count,
    redrive_policy,
)
from tests.aws_calls import GRANTS, NOT_FROM_FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = ROOT / "template.yaml"
PREFIX = "orderbridge-test"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


# --- lint -----------------------------------------------------------------------------------------


def test_cfn_lint_with_serverless_rules_is_clean() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    # The template goes first: -a/--append-rules takes one or more values.
    result = subprocess.run(
        [str(cfn_lint), str(TEMPLATE_PATH), "-a", "cfn_lint_serverless.rules"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- loading ----------------------------------------------------------------------------------------


def test_short_form_tags_become_long_form(template: dict[str, Any]) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["OUTCOME_TABLE"] == {"Ref": "OutcomeTable"}
    redrive = template["Resources"]["OrderQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["OrderDeadLetterQueue", "Arn"]}
    alarm = template["Resources"]["DeadLetterQueueAlarm"]["Properties"]
    assert alarm["AlarmActions"] == {
        "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
    }
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }


def test_the_functions_environment_names_the_variables_the_code_reads(template: dict[str, Any]) -> None:
    env = functions_environment(template)
    for name in (
        constants.OUTCOME_TABLE_ENV,
        constants.TRACKING_ID_KEY_SECRET_ENV,
        constants.ORDER_QUEUE_URL_ENV,
        constants.CONFIG_BUCKET_ENV,
        constants.CONFIG_KEY_ENV,
        constants.MAX_RECEIVE_COUNT_ENV,
    ):
        assert name in env
    assert env[constants.CONFIG_KEY_ENV] == constants.CONFIG_KEY_DEFAULT
    # the stack's prefix names the service (metrics' dimension, logs' key); the default is the old name
    assert env["POWERTOOLS_SERVICE_NAME"] == env["RESOURCE_PREFIX"] == {"Ref": "ResourcePrefix"}
    assert template["Parameters"]["ResourcePrefix"]["Default"] == constants.SERVICE_NAME
    assert template["Parameters"]["MaxReceiveCount"]["Default"] == constants.MAX_RECEIVE_COUNT_DEFAULT


def test_queue_visibility_covers_six_dispatcher_timeouts(template: dict[str, Any]) -> None:
    dispatcher = template["Resources"]["DispatcherFunction"]["Properties"]
    queue = template["Resources"]["OrderQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * dispatcher["Timeout"]


def default_name(name: Any, template: dict[str, Any]) -> str:
    """A secret's Name as the default stack resolves it (`!Sub ${ResourcePrefix}/...`)."""
    text = name["Fn::Sub"] if isinstance(name, dict) else name
    return text.replace("${ResourcePrefix}", template["Parameters"]["ResourcePrefix"]["Default"])


def test_secrets_have_the_names_the_configuration_uses(template: dict[str, Any]) -> None:
    names = {
        default_name(v["Properties"]["Name"], template)
        for v in resources_of(template, "AWS::SecretsManager::Secret").values()
    }
    config = json.loads((ROOT / "config" / "local.json").read_text())
    used = (
        {d["secret_id"] for d in config["destinations"].values()}
        | {w["secret_id"] for w in config["webhooks"].values()}
        | {constants.CLIENT_HASH_SECRET_DEFAULT}  # the intake's own key, generated at deploy
        | {constants.TRACKING_ID_KEY_SECRET_DEFAULT}  # the tracking id key, generated at deploy
    )
    assert names == used, "every secret the configuration names is declared in the template, and no other"
    for secret in resources_of(template, "AWS::SecretsManager::Secret").values():
        assert "SecretString" not in secret["Properties"]  # never a literal value in the template


def test_function_policies_are_explicit_and_without_wildcard_actions(template: dict[str, Any]) -> None:
    for function in resources_of(template, "AWS::Serverless::Function").values():
        for policy in function["Properties"]["Policies"]:
            assert isinstance(policy, dict) and "Statement" in policy
            for statement in policy["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert all("*" not in action for action in actions)


# --- SAM translation ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(template)
    # As `sam package` does: local code paths become S3 locations before the transform.
    for logical_id, resource in document["Resources"].items():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://orderbridge-artifacts/{logical_id}.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name="us-east-1"))
    return translator.translate(document, parameter_values={}, get_managed_policy_map=lambda: {})


def test_sam_translates_the_functions(translated: dict[str, Any]) -> None:
    functions = resources_of(translated, "AWS::Lambda::Function")
    assert set(functions) == {"IntakeFunction", "DispatcherFunction", "ImporterFunction", "SweeperFunction"}
    for function in functions.values():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.13"
        assert properties["Architectures"] == ["arm64"]
        assert properties["TracingConfig"] == {"Mode": "Active"}
        assert properties["Handler"] == "app.lambda_handler"
        assert len(properties["Layers"]) == 1
        assert properties["Environment"]["Variables"]["OUTCOME_TABLE"] == {"Ref": "OutcomeTable"}
    assert functions["DispatcherFunction"]["Properties"]["Timeout"] == 60
    assert len(resources_of(translated, "AWS::Lambda::LayerVersion")) == 1


def test_sam_translates_the_queue_event_with_partial_batch_failures(translated: dict[str, Any]) -> None:
    (mapping,) = resources_of(translated, "AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    assert properties["FunctionName"] == {"Ref": "DispatcherFunction"}
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["OrderQueue", "Arn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BatchSize"] == 10
    assert properties["MaximumBatchingWindowInSeconds"] == 1
    assert properties["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_sam_translates_the_api(translated: dict[str, Any]) -> None:
    (stage,) = resources_of(translated, "AWS::ApiGateway::Stage").values()
    properties = stage["Properties"]
    assert properties["StageName"] == "v1"
    assert properties["TracingEnabled"] is True
    assert properties["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    settings = properties["MethodSettings"]
    assert settings[0]["ResourcePath"] == "/*" and settings[0]["HttpMethod"] == "*"  # the stage default
    for throttle in settings:
        assert throttle["ThrottlingRateLimit"] > 0 and throttle["ThrottlingBurstLimit"] > 0
    (api,) = resources_of(translated, "AWS::ApiGateway::RestApi").values()
    paths = api["Properties"]["Body"]["paths"]
    # every per-route throttle names a route and method the API has (API Gateway encodes / as ~1)
    for throttle in settings[1:]:
        # "/" + the route with each "/" as "~1": /webhooks/{source} is /~1webhooks~1{source}
        assert throttle["ResourcePath"].startswith("/~1"), throttle
        path = throttle["ResourcePath"][1:].replace("~1", "/")
        assert throttle["HttpMethod"].lower() in paths[path], throttle
    storefront = {
        "/forms/{form_key}/embed": {"get"},
        "/forms/{form_key}/submit": {"post"},
        "/forms/{form_key}/confirmation/{tracking_id}": {"get"},
        "/forms/{form_key}/orders/{tracking_id}": {"get"},
        "/storefront/{asset}": {"get"},
    }
    original = {"/forms/{form_key}", "/webhooks/{source}", "/orders/{tracking_id}", "/openapi.json"}
    assert set(paths) == original | set(storefront)
    assert set(paths["/forms/{form_key}"]) == {"post", "options", "get"}
    assert {p: set(paths[p]) for p in storefront} == storefront
    assert set(paths["/webhooks/{source}"]) == {"post"}
    assert set(paths["/orders/{tracking_id}"]) == {"get"}
    assert set(paths["/openapi.json"]) == {"get"}
    permissions = resources_of(translated, "AWS::Lambda::Permission")
    assert {p["Properties"]["Principal"] for p in permissions.values()} == {"apigateway.amazonaws.com"}


def test_sam_keeps_the_explicit_policies(translated: dict[str, Any]) -> None:
    role = translated["Resources"]["DispatcherFunctionRole"]["Properties"]
    actions = {
        action
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert "sqs:ChangeMessageVisibility" in actions
    assert "secretsmanager:GetSecretValue" in actions
    # it sends to the dead-letter queue (parking permanent failures) and to the order queue (a fresh
    # copy of a record it is still reconciling or had no time to start), nowhere else
    senders = [
        statement["Resource"]
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if "sqs:SendMessage"
        in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]
    assert senders == [
        [{"Fn::GetAtt": ["OrderDeadLetterQueue", "Arn"]}, {"Fn::GetAtt": ["OrderQueue", "Arn"]}]
    ]


# --- local resources on moto's server ---------------------------------------------------------------------


# moto keeps its state per process, account and region, not per server: a region of its own keeps
# these resources (same secret names as the local run's) away from the harness's in this worker.
ISOLATED_REGION = "eu-west-1"


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, Any]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        yield {
            service: boto3.client(
                service,
                endpoint_url=endpoint,
                region_name=ISOLATED_REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            for service in ("dynamodb", "sqs", "s3", "secretsmanager")
        }
    finally:
        server.stop()


@pytest.fixture(scope="module")
def local(template: dict[str, Any], aws: dict[str, Any]) -> LocalResources:
    return create_resources(
        template=template,
        prefix=PREFIX,
        secret_values={"orderbridge/webhooks/shopify-demo": '{"secrets": ["local"]}'},
        **aws,
    )


def test_tables_match_the_template(
    template: dict[str, Any], aws: dict[str, Any], local: LocalResources
) -> None:
    declared = resources_of(template, "AWS::DynamoDB::Table")
    assert local.tables == {logical_id: f"{PREFIX}-{logical_id}" for logical_id in declared}
    for logical_id, resource in declared.items():
        expected = resource["Properties"]
        table = aws["dynamodb"].describe_table(TableName=local.tables[logical_id])["Table"]
        assert table["KeySchema"] == expected["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(
            expected["AttributeDefinitions"], key=str
        )
        assert table["BillingModeSummary"]["BillingMode"] == expected["BillingMode"]
        indexes = {
            g["IndexName"]: (g["KeySchema"], g["Projection"]) for g in table.get("GlobalSecondaryIndexes", [])
        }
        assert indexes == {
            g["IndexName"]: (g["KeySchema"], g["Projection"])
            for g in expected.get("GlobalSecondaryIndexes", [])
        }
        ttl = aws["dynamodb"].describe_time_to_live(TableName=local.tables[logical_id])[
            "TimeToLiveDescription"
        ]
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert ttl["AttributeName"] == expected["TimeToLiveSpecification"]["AttributeName"]
    outcome_indexes = {
        g["IndexName"]
        for g in aws["dynamodb"].describe_table(TableName=local.tables["OutcomeTable"])["Table"][
            "GlobalSecondaryIndexes"
        ]
    }
    assert outcome_indexes == {"by-source-ref", "by-status"}


def test_order_queue_redrives_to_the_dead_letter_queue(
    template: dict[str, Any], aws: dict[str, Any], local: LocalResources
) -> None:
    assert set(local.queues) == {"OrderQueue", "OrderDeadLetterQueue"}
    policy = redrive_policy(sqs=aws["sqs"], queue_url=local.queues["OrderQueue"])
    assert policy is not None
    assert policy["deadLetterTargetArn"] == local.queue_arns["OrderDeadLetterQueue"]
    expected = template["Parameters"]["MaxReceiveCount"]["Default"]
    assert max_receive_count(sqs=aws["sqs"], queue_url=local.queues["OrderQueue"]) == expected
    assert max_receive_count(sqs=aws["sqs"], queue_url=local.queues["OrderDeadLetterQueue"]) is None
    attributes = aws["sqs"].get_queue_attributes(QueueUrl=local.queues["OrderQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["VisibilityTimeout"] == str(
        template["Resources"]["OrderQueue"]["Properties"]["VisibilityTimeout"]
    )


def test_bucket_and_secrets(aws: dict[str, Any], local: LocalResources) -> None:
    assert local.buckets == {
        "ConfigBucket": f"{PREFIX}-configbucket",
        "ImportBucket": f"{PREFIX}-importbucket",
        "EventPayloadBucket": f"{PREFIX}-eventpayloadbucket",
    }
    aws["s3"].head_bucket(Bucket=local.buckets["ConfigBucket"])
    versioning = aws["s3"].get_bucket_versioning(Bucket=local.buckets["ConfigBucket"])
    assert versioning["Status"] == "Enabled"
    assert local.secrets["ShopifyDemoWebhookSecret"] == "orderbridge/webhooks/shopify-demo"
    supplied = aws["secretsmanager"].get_secret_value(SecretId="orderbridge/webhooks/shopify-demo")
    assert supplied["SecretString"] == '{"secrets": ["local"]}'
    placeholder = aws["secretsmanager"].get_secret_value(SecretId="orderbridge/providers/bigcommerce-demo")
    assert placeholder["SecretString"]  # a placeholder, never empty


def test_environment_resolves_globals_to_local_names(template: dict[str, Any], local: LocalResources) -> None:
    env = local.environment()
    assert set(env) == set(functions_environment(template))
    assert env["OUTCOME_TABLE"] == local.tables["OutcomeTable"]
    assert env["TRACKING_ID_KEY_SECRET_ID"] == local.secret_arns["TrackingIdKey"]
    assert env["ORDER_QUEUE_URL"] == local.queues["OrderQueue"]
    assert env["CONFIG_BUCKET"] == local.buckets["ConfigBucket"]
    assert env["CONFIG_KEY"] == "orderbridge.json"
    assert env["MAX_RECEIVE_COUNT"] == str(template["Parameters"]["MaxReceiveCount"]["Default"])
    assert env["POWERTOOLS_SERVICE_NAME"] == "orderbridge"  # the default ResourcePrefix
    assert env["RESOURCE_PREFIX"] == "orderbridge"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Orderbridge"
    assert all(isinstance(v, str) for v in env.values())


def test_creating_again_reuses_everything(
    template: dict[str, Any], aws: dict[str, Any], local: LocalResources
) -> None:
    again = create_resources(template=template, prefix=PREFIX, **aws)
    assert again.tables == local.tables
    assert again.queues == local.queues
    assert again.queue_arns == local.queue_arns
    assert again.buckets == local.buckets
    assert again.secrets == local.secrets
    assert again.environment() == local.environment()
    # a secret the caller does not supply keeps its value
    kept = aws["secretsmanager"].get_secret_value(SecretId="orderbridge/webhooks/shopify-demo")
    assert kept["SecretString"] == '{"secrets": ["local"]}'


def test_parameter_overrides_reach_the_queue_and_the_environment(
    template: dict[str, Any], aws: dict[str, Any]
) -> None:
    overridden = create_resources(
        template=template, prefix=f"{PREFIX}-mrc", parameter_overrides={"MaxReceiveCount": "3"}, **aws
    )
    assert max_receive_count(sqs=aws["sqs"], queue_url=overridden.queues["OrderQueue"]) == 3
    assert overridden.environment()["MAX_RECEIVE_COUNT"] == "3"


def test_unknown_parameter_override_is_refused(template: dict[str, Any], aws: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="MaxRecieveCount"):
        create_resources(
            template=template, prefix=PREFIX, parameter_overrides={"MaxRecieveCount": "3"}, **aws
        )


def test_every_checkov_skip_names_a_check_and_a_reason(template: dict[str, Any]) -> None:
    skips = [
        (logical_id, skip)
        for logical_id, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "accepted checkov findings are recorded in the template"
    for logical_id, skip in skips:
        assert skip["id"].startswith("CKV_") and len(skip.get("comment", "")) > 40, logical_id


def test_intake_reads_only_its_own_secrets(template: dict[str, Any]) -> None:
    statements = template["Resources"]["IntakeFunction"]["Properties"]["Policies"][0]["Statement"]
    reads = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    resources = [json.dumps(s["Resource"]) for s in reads]
    assert {"Ref": "ClientHashKey"} in [s["Resource"] for s in reads]  # the one key, not a prefix
    assert all(
        "${ResourcePrefix}/webhooks/*" in r
        or "${ResourcePrefix}/providers/*" in r
        or "ClientHashKey" in r
        or "TrackingIdKey" in r
        for r in resources
    )


# --- first deploy, abuse limits (issue 15: deploy; issue 16: one shared throttle) ------------------------


def test_first_deploy_creates_the_api_gateway_logging_role(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    parameter = template["Parameters"]["CreateApiGatewayAccountRole"]
    assert parameter["Default"] == "true" and set(parameter["AllowedValues"]) == {"true", "false"}
    resources = template["Resources"]
    role, account = resources["ApiGatewayCloudWatchRole"], resources["ApiGatewayAccount"]
    assert role["Condition"] == account["Condition"] == "CreateApiGatewayAccount"
    assert role["DeletionPolicy"] == "Retain"  # the account setting outlives the stack
    (managed,) = role["Properties"]["ManagedPolicyArns"]
    assert managed["Fn::Sub"].endswith(":iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs")
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    # the stage (which writes access logs) waits for the account setting: stage -> RestApi -> handle
    handle = translated["Resources"]["ApiGatewayAccountReady"]
    assert handle["Metadata"]["ApiGatewayAccount"] == {
        "Fn::If": ["CreateApiGatewayAccount", {"Ref": "ApiGatewayAccount"}, ""]
    }
    (api_id,) = resources_of(translated, "AWS::ApiGateway::RestApi")
    assert translated["Resources"][api_id]["DependsOn"] in (
        "ApiGatewayAccountReady",
        ["ApiGatewayAccountReady"],
    )
    (stage,) = resources_of(translated, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["RestApiId"] == {"Ref": api_id}
    assert "AccessLogSetting" in stage["Properties"]


def test_waf_limits_each_client_ip_on_the_api_stage(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    parameters = template["Parameters"]
    assert parameters["EnableWaf"]["Default"] == "true"
    assert parameters["WafRateLimitPerIp"]["MinValue"] >= 10  # WAF's own minimum
    acl = template["Resources"]["ApiWebAcl"]
    assert acl["Condition"] == "WafEnabled" and acl["Properties"]["Scope"] == "REGIONAL"
    assert acl["Properties"]["DefaultAction"] == {"Allow": {}}
    (rule,) = acl["Properties"]["Rules"]
    assert rule["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",  # the connection's address, never a forwarded header
        "Limit": {"Ref": "WafRateLimitPerIp"},
    }
    assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    association = translated["Resources"]["ApiWebAclAssociation"]
    assert association["Condition"] == "WafEnabled"
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": ["ApiWebAcl", "Arn"]}
    arn = association["Properties"]["ResourceArn"]["Fn::Sub"]
    (stage_id,) = resources_of(translated, "AWS::ApiGateway::Stage")
    assert arn.endswith(f"::/restapis/${{OrderbridgeApi}}/stages/${{{stage_id}}}")


def test_local_run_skips_the_account_role_and_the_waf(template: dict[str, Any], aws: dict[str, Any]) -> None:
    for value in ("true", "false"):
        created = create_resources(
            template=template,
            prefix=f"{PREFIX}-waf-{value}",
            parameter_overrides={"EnableWaf": value, "CreateApiGatewayAccountRole": value},
            **aws,
        )
        assert set(created.tables) and set(created.queues)


# --- several stacks per account (issue 15: "a stack name prefix on every named resource") ----------------


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a template fragment, Fn::Sub texts included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def test_every_secret_name_and_secret_arn_starts_with_the_prefix(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ResourcePrefix"]
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch("orderbridge") and pattern.fullmatch("orderbridge-staging")
    assert (
        not pattern.fullmatch("Orderbridge")
        and not pattern.fullmatch("orderbridge/")
        and not pattern.fullmatch("x")
    )
    secrets = resources_of(template, "AWS::SecretsManager::Secret")
    assert len(secrets) >= 10
    for logical_id, secret in secrets.items():
        assert secret["Properties"]["Name"]["Fn::Sub"].startswith("${ResourcePrefix}/"), logical_id
    arns = [s for s in strings_in(template["Resources"]) if ":secret:" in s]
    assert len(arns) >= 4  # providers (intake, dispatcher), webhooks, imports
    for arn in arns:
        assert arn.split(":secret:", 1)[1].startswith("${ResourcePrefix}/"), arn
    # no literal prefix left in a name, an ARN pattern or a metric dimension
    assert not [
        s
        for s in strings_in(template["Resources"])
        if s.startswith("orderbridge/") or ":secret:orderbridge" in s
    ]
    for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values():
        for dimension in alarm["Properties"].get("Dimensions", []):
            if dimension["Name"] == "service":
                assert dimension["Value"] == {"Ref": "ResourcePrefix"}


#: properties that give a resource its account-wide name (CloudFormation's and SAM's)
NAME_PROPERTIES = (
    "Name",
    "LayerName",
    "LogGroupName",
    "TableName",
    "QueueName",
    "BucketName",
    "RoleName",
    "FunctionName",
    "TopicName",
    "ScheduleGroupName",
    "AlarmName",
)


def test_every_explicit_name_is_one_stacks_own(template: dict[str, Any]) -> None:
    """Two stacks (production, staging) fit one account and region: whatever is named, not generated,
    carries the stack's ResourcePrefix, its stack name, or a generated name of its own stack."""
    named = 0
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        for key in NAME_PROPERTIES:
            if key not in properties:
                continue
            value = properties[key]
            if isinstance(value, dict) and set(value) <= {"Ref", "Fn::GetAtt"}:
                continue  # another resource of this stack, by reference (a permission's function)
            text = value.get("Fn::Sub") if isinstance(value, dict) else value
            assert isinstance(text, str), f"{logical_id}.{key}: {value!r}"
            own = re.findall(r"\$\{([A-Za-z0-9:]+)\}", text)
            assert any(
                ref in ("ResourcePrefix", "AWS::StackName") or ref in template["Resources"] for ref in own
            ), f"{logical_id}.{key} = {text!r} would be shared by every stack of the account"
            named += 1
    assert named >= 15
    layer = template["Resources"]["OrderbridgeLayer"]["Properties"]
    assert layer["LayerName"] == {"Fn::Sub": "${ResourcePrefix}-layer"}


def test_the_tracking_id_key_is_kept_but_never_blocks_a_first_deploys_retry(template: dict[str, Any]) -> None:
    """Kept when the stack is deleted (a new key would give a redelivered order a new id: a second
    order); not kept when the creating stack rolls back, or the retry would fail on its name."""
    key = template["Resources"]["TrackingIdKey"]
    assert key["DeletionPolicy"] == "RetainExceptOnCreate"
    assert key["UpdateReplacePolicy"] == "Retain"


def test_a_second_stack_gets_its_own_secret_names(template: dict[str, Any], aws: dict[str, Any]) -> None:
    staging = create_resources(
        template=template,
        prefix=f"{PREFIX}-staging",
        parameter_overrides={"ResourcePrefix": "orderbridge-staging"},
        **aws,
    )
    assert staging.secrets["ShopifyDemoWebhookSecret"] == "orderbridge-staging/webhooks/shopify-demo"
    assert staging.secrets["TrackingIdKey"] == "orderbridge-staging/identity/tracking-id-key"
    assert all(name.startswith("orderbridge-staging/") for name in staging.secrets.values())
    assert staging.environment()["RESOURCE_PREFIX"] == "orderbridge-staging"
    assert staging.environment()["POWERTOOLS_SERVICE_NAME"] == "orderbridge-staging"


def test_the_default_stack_keeps_the_orderbridge_names(local: LocalResources) -> None:
    assert all(name.startswith("orderbridge/") for name in local.secrets.values())
    assert local.secrets["TrackingIdKey"] == constants.TRACKING_ID_KEY_SECRET_DEFAULT
    assert local.secrets["ClientHashKey"] == constants.CLIENT_HASH_SECRET_DEFAULT


# --- grants: every call allowed, nothing granted that no call needs (tests/aws_calls.py) -----------------

LAYER = ROOT / "layers" / "orderbridge" / "orderbridge"
AWS_SERVICES = ("dynamodb", "sqs", "s3", "secretsmanager")
#: boto3 operations whose IAM action has another name
ACTION_OF_OPERATION = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
}


def resource_name(resource: Any) -> str:
    """A policy Resource as aws_calls.py writes it: `OutcomeTable`, `ConfigBucket/orderbridge.json`,
    `secret:${ResourcePrefix}/providers/*`."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        assert attribute == "Arn", resource
        return logical_id
    if isinstance(resource, dict) and "Ref" in resource:
        return resource["Ref"]
    text = resource["Fn::Sub"]
    if ":secret:" in text:
        return "secret:" + text.split(":secret:", 1)[1]
    match = re.fullmatch(r"\$\{(\w+)\.Arn\}(/.*)", text)
    assert match, text
    return match.group(1) + match.group(2)


def granted(function: dict[str, Any]) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for policy in function["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow" and "Condition" not in statement
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            pairs |= {(a, resource_name(r)) for a in actions for r in resources}
    return pairs


def aws_call_sites() -> dict[str, set[str]]:
    """`Class.method` (or `module.function`) -> the IAM actions of the boto3 calls in its body.

    A boto3 client call passes keyword arguments only (pydantic's `SecretStr.get_secret_value()`
    has none); a paginator counts as its operation.
    """
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    operations: dict[str, set[str]] = {}
    for service in AWS_SERVICES:
        prefix = session.get_service_model(service).signing_name if service != "secretsmanager" else service
        for operation in session.get_service_model(service).operation_names:
            action = f"{prefix}:{operation}"
            operations.setdefault(xform_name(operation), set()).add(ACTION_OF_OPERATION.get(action, action))
    sites: dict[str, set[str]] = {}
    for path in sorted(LAYER.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scopes = [(None, node) for node in tree.body] + [
            (cls.name, node) for cls in tree.body if isinstance(cls, ast.ClassDef) for node in cls.body
        ]
        for owner, node in scopes:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            name = f"{owner or path.stem}.{node.name}"
            for call in ast.walk(node):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                    continue
                attribute = call.func.attr
                if attribute == "get_paginator" and call.args and isinstance(call.args[0], ast.Constant):
                    attribute = str(call.args[0].value)
                elif attribute not in operations or call.args or not call.keywords:
                    continue
                if attribute in operations:
                    sites.setdefault(name, set()).update(operations[attribute])
    return sites


@pytest.mark.parametrize("function", sorted(GRANTS))
def test_each_function_is_granted_exactly_the_calls_it_makes(template: dict[str, Any], function: str) -> None:
    declared = set(GRANTS[function])
    grants = granted(template["Resources"][function])
    assert grants - declared == set(), (
        f"granted but no declared call needs it (tests/aws_calls.py): {sorted(grants - declared)}"
    )
    assert declared - grants == set(), (
        f"declared calls the template does not allow: {sorted(declared - grants)}"
    )


def test_every_function_with_a_policy_is_declared(template: dict[str, Any]) -> None:
    assert set(resources_of(template, "AWS::Serverless::Function")) == set(GRANTS)


def test_each_declared_call_is_made_where_the_table_says() -> None:
    sites = aws_call_sites()
    for function, calls in GRANTS.items():
        for (action, resource), places in calls.items():
            for place in places:
                if place.startswith("implicit:"):
                    continue
                if place == "CredentialStore.get":  # Powertools' SecretsProvider calls GetSecretValue
                    assert action == "secretsmanager:GetSecretValue"
                    source = (LAYER / "credentials.py").read_text(encoding="utf-8")
                    assert "SecretsProvider(" in source and "def get(" in source
                    continue
                assert action in sites.get(place, set()), (
                    function,
                    action,
                    resource,
                    place,
                    sites.get(place),
                )


def test_every_aws_call_in_the_layer_is_declared() -> None:
    sites = aws_call_sites()
    assert {"OutcomeStore.record_received", "Dispatcher._park", "ImportService._s3"} <= set(sites)
    declared = {place for calls in GRANTS.values() for places in calls.values() for place in places}
    undeclared = set(sites) - declared - set(NOT_FROM_FUNCTIONS)
    assert not undeclared, (
        f"declare these calls for the functions that make them (tests/aws_calls.py): {sorted(undeclared)}"
    )
    assert set(NOT_FROM_FUNCTIONS) <= set(sites), "NOT_FROM_FUNCTIONS names a place without an AWS call"
    assert not set(NOT_FROM_FUNCTIONS) & declared


def test_the_configuration_readers_may_list_its_bucket(template: dict[str, Any]) -> None:
    # without s3:ListBucket, S3 answers a missing orderbridge.json with AccessDenied, not NoSuchKey
    for logical_id, function in resources_of(template, "AWS::Serverless::Function").items():
        grants = granted(function)
        if ("s3:GetObject", "ConfigBucket/orderbridge.json") in grants:
            assert ("s3:ListBucket", "ConfigBucket") in grants, logical_id


# --- API Gateway's own answers, WAF's 429 ---------------------------------------------------------------

DOCUMENTED_GATEWAY_CODES = {
    "RATE_LIMITED",
    "NOT_FOUND",
    "BODY_TOO_LARGE",
    "REQUEST_REFUSED",
    "SERVICE_UNAVAILABLE",
}


def test_gateway_answers_carry_cors_and_the_error_shape(template: dict[str, Any]) -> None:
    responses = template["Resources"]["OrderbridgeApi"]["Properties"]["GatewayResponses"]
    assert {
        "THROTTLED",
        "ACCESS_DENIED",
        "WAF_FILTERED",
        "INTEGRATION_TIMEOUT",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    } <= set(responses)
    for kind, response in responses.items():
        headers = response["ResponseParameters"]["Headers"]
        assert headers["Access-Control-Allow-Origin"] == "'*'", kind  # a literal: quoted for API Gateway
        body = response["ResponseTemplates"]["application/json"]
        # $context.error.messageString is already a quoted JSON string
        document = json.loads(body.replace("$context.error.messageString", '"m"'))
        assert set(document["error"]) == {"code", "message", "fields"}, kind
        assert document["error"]["code"] in DOCUMENTED_GATEWAY_CODES, kind
    assert (
        json.loads(
            responses["THROTTLED"]["ResponseTemplates"]["application/json"].replace(
                "$context.error.messageString", '"m"'
            )
        )["error"]["code"]
        == "RATE_LIMITED"
    )
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"  # an unknown path


def test_the_waf_429_is_json_with_cors(template: dict[str, Any]) -> None:
    acl = template["Resources"]["ApiWebAcl"]["Properties"]
    (rule,) = acl["Rules"]
    response = rule["Action"]["Block"]["CustomResponse"]
    body = acl["CustomResponseBodies"][response["CustomResponseBodyKey"]]
    assert body["ContentType"] == "APPLICATION_JSON"
    assert json.loads(body["Content"])["error"]["code"] == "RATE_LIMITED"
    headers = {h["Name"]: h["Value"] for h in response["ResponseHeaders"]}
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_sam_puts_the_gateway_responses_in_the_api(translated: dict[str, Any]) -> None:
    (api,) = resources_of(translated, "AWS::ApiGateway::RestApi").values()
    responses = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    for kind, response in responses.items():
        assert (
            response["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"
        ), kind


# --- REST or HTTP API (issue 17: "the template can deploy the intake behind an HTTP API") ------------------

#: the intake's routes, as the function documents them (GET /openapi.json; openapi/intake.openapi.json)
FUNCTION_ROUTES = {
    (path, method)
    for path, item in json.loads((ROOT / "openapi" / "intake.openapi.json").read_text(encoding="utf-8"))[
        "paths"
    ].items()
    for method in item
}


def api_routes(api: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in api["Properties"]["DefinitionBody"]["paths"].items()
        for method in item
    }


def test_both_apis_route_exactly_the_functions_routes(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert len(FUNCTION_ROUTES) == 11
    assert api_routes(resources["OrderbridgeApi"]) == FUNCTION_ROUTES
    assert api_routes(resources["OrderbridgeHttpApi"]) == FUNCTION_ROUTES
    for api, integration_type in (("OrderbridgeApi", "aws_proxy"), ("OrderbridgeHttpApi", "aws_proxy")):
        for item in resources[api]["Properties"]["DefinitionBody"]["paths"].values():
            for operation in item.values():
                assert operation["x-amazon-apigateway-integration"]["type"] == integration_type
    http = resources["OrderbridgeHttpApi"]["Properties"]
    paths = http["DefinitionBody"]["paths"]
    assert (
        paths["/webhooks/{source}"]["post"]["x-amazon-apigateway-integration"]["payloadFormatVersion"]
        == "2.0"
    )
    assert http["StageName"] == resources["OrderbridgeApi"]["Properties"]["StageName"] == "v1"


def test_the_http_api_throttles_the_same_routes_as_the_rest_api(template: dict[str, Any]) -> None:
    rest = template["Resources"]["OrderbridgeApi"]["Properties"]["MethodSettings"]
    http = template["Resources"]["OrderbridgeHttpApi"]["Properties"]
    default, *per_route = rest
    limits = ("ThrottlingRateLimit", "ThrottlingBurstLimit")
    assert {k: http["DefaultRouteSettings"][k] for k in limits} == {k: default[k] for k in limits}
    assert {
        f"{s['HttpMethod']} {s['ResourcePath'][1:].replace('~1', '/')}": {k: s[k] for k in limits}
        for s in per_route
    } == {key: {k: v[k] for k in limits} for key, v in http["RouteSettings"].items()}
    assert "AccessLogSettings" in http and http["AccessLogSettings"]["DestinationArn"] == {
        "Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]
    }


def test_each_api_type_gets_only_its_resources(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["IntakeApiType"]
    assert parameter["Default"] == "REST" and set(parameter["AllowedValues"]) == {"REST", "HTTP"}
    resources = template["Resources"]
    rest_only = {"OrderbridgeApi", "ApiAccessLogGroup", "IntakeRestApiPermission"}
    http_only = {"OrderbridgeHttpApi", "HttpApiAccessLogGroup", "IntakeHttpApiPermission"}
    assert {k for k, v in resources.items() if v.get("Condition") == "RestIntake"} == rest_only
    assert {k for k, v in resources.items() if v.get("Condition") == "HttpIntake"} == http_only
    # WAF and the account's logging role only with the REST API
    for condition in ("WafEnabled", "CreateApiGatewayAccount"):
        assert {"Condition": "RestIntake"} in template["Conditions"][condition]["Fn::And"]
    # the function has no API events (SAM cannot make one conditional): the APIs' definitions route to it
    assert "Events" not in resources["IntakeFunction"]["Properties"]
    for permission in ("IntakeRestApiPermission", "IntakeHttpApiPermission"):
        properties = resources[permission]["Properties"]
        assert properties["FunctionName"] == {"Ref": "IntakeFunction"}
        assert properties["Principal"] == "apigateway.amazonaws.com"
    outputs = template["Outputs"]
    for name in ("ApiUrl", "StatusUrlBase"):
        condition, rest, http = outputs[name]["Value"]["Fn::If"]
        assert condition == "RestIntake"
        assert "${OrderbridgeApi}" in rest["Fn::Sub"] and "${OrderbridgeHttpApi}" in http["Fn::Sub"]
        assert rest["Fn::Sub"].replace("OrderbridgeApi", "X") == http["Fn::Sub"].replace(
            "OrderbridgeHttpApi", "X"
        )
    assert outputs["StatusUrlBase"]["Value"]["Fn::If"][1]["Fn::Sub"].endswith("/v1/orders/")


def test_the_local_run_creates_the_same_resources_for_either_api(
    template: dict[str, Any], aws: dict[str, Any]
) -> None:
    created = create_resources(
        template=template, prefix=f"{PREFIX}-http", parameter_overrides={"IntakeApiType": "HTTP"}, **aws
    )
    assert set(created.tables) == {"OutcomeTable", "RateLimitTable", "ImportStateTable"}
