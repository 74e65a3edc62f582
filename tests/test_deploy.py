"""Deploying: samconfig.toml deploys without questions, the production example is a valid
configuration, the README's walkthrough names the real secrets, and `status_url` carries the
prefix (stage or base path) the client reached the API by (issue 15, "Deploy")."""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

from orderbridge.config import validate_document
from orderbridge.intake.http import accepted_response, api_base_path, status_url
from orderbridge.intake.service import Accepted
from orderbridge_local.template_resources import load_template

ROOT = Path(__file__).resolve().parents[1]
TRACKING_ID = "ob_" + "0" * 32


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def deploy_parameters() -> dict[str, Any]:
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    return samconfig["default"]["deploy"]["parameters"]


# --- samconfig.toml -----------------------------------------------------------------------------------


def test_sam_deploy_asks_nothing(deploy_parameters: dict[str, Any]) -> None:
    assert deploy_parameters["confirm_changeset"] is False
    assert deploy_parameters["resolve_s3"] is True  # no bucket to create or name by hand
    assert set(deploy_parameters["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert "guided" not in deploy_parameters


def test_sam_deploy_overrides_name_declared_parameters_with_allowed_values(
    template: dict[str, Any], deploy_parameters: dict[str, Any]
) -> None:
    declared = template["Parameters"]
    overrides = dict(item.split("=", 1) for item in shlex.split(deploy_parameters["parameter_overrides"]))
    assert {"CreateApiGatewayAccountRole", "EnableWaf"} <= set(overrides)
    for name, value in overrides.items():
        assert name in declared, name
        allowed = declared[name].get("AllowedValues")
        if allowed is not None:
            assert value in {str(a) for a in allowed}, (name, value)
        if declared[name]["Type"] == "Number":
            number = float(value)
            assert declared[name].get("MinValue", number) <= number <= declared[name].get("MaxValue", number)


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
    declared = {
        resource["Properties"]["Name"]
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
