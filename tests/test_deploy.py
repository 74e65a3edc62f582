"""Deploying: samconfig.toml deploys without questions, the production example is a valid
configuration, the README's walkthrough names the real secrets, and `status_url` carries the
prefix (stage or base path) the client reached the API by (issue 15, "Deploy")."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

from orderbridge.config import ConfigStore, validate_document
from orderbridge.exceptions import ConfigurationError
from orderbridge.intake.http import accepted_response, api_base_path, status_url
from orderbridge.intake.service import Accepted
from orderbridge_local.template_resources import load_template

ROOT = Path(__file__).resolve().parents[1]
TRACKING_ID = "ob_" + "0" * 32


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def deploy_parameters() -> dict[str, Any]:
    return SAMCONFIG["default"]["deploy"]["parameters"]


def overrides_of(parameters: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(parameters["parameter_overrides"]))


# --- samconfig.toml -----------------------------------------------------------------------------------


def test_sam_deploy_asks_nothing(deploy_parameters: dict[str, Any]) -> None:
    assert deploy_parameters["confirm_changeset"] is False
    assert deploy_parameters["resolve_s3"] is True  # no bucket to create or name by hand
    assert set(deploy_parameters["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert "guided" not in deploy_parameters


@pytest.mark.parametrize("environment", sorted(k for k, v in SAMCONFIG.items() if isinstance(v, dict)))
def test_sam_deploy_overrides_name_declared_parameters_with_allowed_values(
    template: dict[str, Any], environment: str
) -> None:
    declared = template["Parameters"]
    overrides = overrides_of(SAMCONFIG[environment]["deploy"]["parameters"])
    assert {"ResourcePrefix", "IntakeApiType", "CreateApiGatewayAccountRole", "EnableWaf"} <= set(overrides)
    for name, value in overrides.items():
        assert name in declared, name
        allowed = declared[name].get("AllowedValues")
        if allowed is not None:
            assert value in {str(a) for a in allowed}, (name, value)
        if "AllowedPattern" in declared[name]:
            assert re.fullmatch(declared[name]["AllowedPattern"], value), (name, value)
        if declared[name]["Type"] == "Number":
            number = float(value)
            assert declared[name].get("MinValue", number) <= number <= declared[name].get("MaxValue", number)


def test_a_staging_stack_fits_beside_the_default_one() -> None:
    default, staging = SAMCONFIG["default"], SAMCONFIG["staging"]
    assert staging["global"]["parameters"]["stack_name"] != default["global"]["parameters"]["stack_name"]
    prefixes = {overrides_of(env["deploy"]["parameters"])["ResourcePrefix"] for env in (default, staging)}
    assert prefixes == {"orderbridge", "orderbridge-staging"}
    # one account role per account and region: the first stack creates it
    assert overrides_of(staging["deploy"]["parameters"])["CreateApiGatewayAccountRole"] == "false"
    for key in ("capabilities", "confirm_changeset", "resolve_s3"):
        assert staging["deploy"]["parameters"][key] == default["deploy"]["parameters"][key]


def test_template_capabilities_suffice(template: dict[str, Any]) -> None:
    # CAPABILITY_IAM covers unnamed IAM resources only: a named one would need CAPABILITY_NAMED_IAM
    for logical_id, resource in template["Resources"].items():
        if resource["Type"].startswith("AWS::IAM::"):
            properties = resource.get("Properties", {})
            assert not {"RoleName", "PolicyName", "UserName", "GroupName"} & set(properties), logical_id


# --- config/production.example.json ------------------------------------------------------------------


def test_production_example_is_a_valid_configuration_for_aws(template: dict[str, Any]) -> None:
    text = (ROOT / "config" / "production.example.json").read_text(encoding="utf-8")
    assert "${" not in text and "REPLACE" not in text.upper()  # nothing left to fill in
    config = validate_document(text, local=False)
    assert config.forms and config.webhooks and config.destinations
    document = json.loads(text)
    secret_ids = {d["secret_id"] for d in document["destinations"].values()} | {
        w["secret_id"] for w in document["webhooks"].values()
    }
    prefix = template["Parameters"]["ResourcePrefix"]["Default"]
    declared = {
        resource["Properties"]["Name"]["Fn::Sub"].replace("${ResourcePrefix}", prefix)
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::SecretsManager::Secret"
    }
    assert secret_ids <= declared, "every secret the example names is created by the stack"
    for form in document["forms"].values():
        assert all(origin.startswith("https://") for origin in form["allowed_origins"])


def test_readme_walkthrough_sets_every_secret_of_the_example() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Deploying") :]
    document = json.loads((ROOT / "config" / "production.example.json").read_text(encoding="utf-8"))
    for secret_id in {d["secret_id"] for d in document["destinations"].values()} | {
        w["secret_id"] for w in document["webhooks"].values()
    }:
        assert f"aws secretsmanager put-secret-value --secret-id {secret_id}" in section, secret_id
    assert "sam deploy --guided" not in section.replace("no `--guided`", "")
    assert "sam build" in section and "sam deploy" in section
    assert "orderbridge.json" in section and "config check" in section
    for form_key in document["forms"]:
        assert f"/forms/{form_key}" in section


def body_of(response: Any) -> dict[str, Any]:
    body = response.body
    return body if isinstance(body, dict) else json.loads(body)


# --- status_url ---------------------------------------------------------------------------------------


def rest_event(*, client_path: str, path: str, resource: str, parameters: dict[str, str]) -> dict[str, Any]:
    """The parts of a REST API (v1 payload) proxy event that locate the request."""
    return {
        "resource": resource,
        "path": path,
        "pathParameters": parameters,
        "requestContext": {"stage": "v1", "path": client_path, "resourcePath": resource},
    }


def test_default_endpoint_puts_the_stage_in_front() -> None:
    event = rest_event(
        client_path="/v1/forms/fk_shop0001",
        path="/forms/fk_shop0001",
        resource="/forms/{form_key}",
        parameters={"form_key": "fk_shop0001"},
    )
    assert api_base_path(event) == "/v1"
    response = accepted_response(Accepted(tracking_id=TRACKING_ID), base_path=api_base_path(event))
    assert response.status_code == 202
    assert body_of(response)["status_url"] == f"/v1/orders/{TRACKING_ID}"


def test_custom_domain_with_a_base_path_puts_the_base_path_in_front() -> None:
    # https://orders.example.com/shop/webhooks/shopify-demo, base path mapping "shop" -> stage v1:
    # API Gateway leaves the base path in `path` and in requestContext.path, and no stage
    event = rest_event(
        client_path="/shop/webhooks/shopify-demo",
        path="/shop/webhooks/shopify-demo",
        resource="/webhooks/{source}",
        parameters={"source": "shopify-demo"},
    )
    assert api_base_path(event) == "/shop"
    body = body_of(accepted_response(Accepted(tracking_id=TRACKING_ID), base_path="/shop"))
    assert body["status_url"] == f"/shop/orders/{TRACKING_ID}"


def test_custom_domain_at_its_root_has_no_prefix() -> None:
    event = rest_event(
        client_path="/forms/fk_shop0001/submit",
        path="/forms/fk_shop0001/submit",
        resource="/forms/{form_key}/submit",
        parameters={"form_key": "fk_shop0001"},
    )
    assert api_base_path(event) == ""
    assert status_url(TRACKING_ID, api_base_path(event)) == f"/orders/{TRACKING_ID}"


def test_the_sample_event_and_checkout_answers_carry_the_stage() -> None:
    sample = json.loads((ROOT / "events" / "api-form-json.json").read_text(encoding="utf-8"))
    assert api_base_path(sample) == "/v1"  # resource without parameters: the path itself
    accepted = Accepted(tracking_id=TRACKING_ID, redirect_url="https://pay.example.com/c/1")
    body = body_of(accepted_response(accepted, base_path="/v1"))
    assert body["status_url"] == f"/v1/orders/{TRACKING_ID}"


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"requestContext": {}},
        {"requestContext": {"path": "/v1/other"}, "path": "/forms/k", "resource": "/forms/{form_key}"},
        {
            "requestContext": {"path": "https://evil.example/x/orders"},
            "path": "/orders",
            "resource": "/orders",
        },
        {"requestContext": {"path": "//evil.example/orders"}, "path": "/orders", "resource": "/orders"},
        {"requestContext": {"path": "/../orders"}, "path": "/orders", "resource": "/orders"},
    ],
)
def test_anything_unexpected_gives_no_prefix(event: dict[str, Any]) -> None:
    assert api_base_path(event) == ""


def test_without_a_base_path_the_answer_is_as_before() -> None:
    body = body_of(accepted_response(Accepted(tracking_id=TRACKING_ID)))
    assert body["status_url"] == f"/orders/{TRACKING_ID}"


# --- before the first upload (issue 15: AccessDenied instead of "no such key") ---------------------------


def test_no_configuration_uploaded_says_where_and_how() -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(
            Bucket="ob-deploy-config", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        store = ConfigStore(bucket="ob-deploy-config", key="orderbridge.json", s3_client=s3)
        with pytest.raises(ConfigurationError) as raised:
            store.load()
    finally:
        server.stop()
    message = str(raised.value)
    assert "no configuration was uploaded at s3://ob-deploy-config/orderbridge.json" in message
    assert "aws s3 cp FILE s3://ob-deploy-config/orderbridge.json" in message
    assert "orderbridge config check" in message
