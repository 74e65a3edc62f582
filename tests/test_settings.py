"""Each function's environment model (orderbridge.settings) against template.yaml, its errors, its
defaults, and RESOURCE_PREFIX: the prefix the configuration's secret ids are checked against."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from orderbridge import constants
from orderbridge.config import ConfigStore, InvalidConfigurationError, validate_document
from orderbridge.exceptions import SettingsError
from orderbridge.models.config import OrderbridgeConfig
from orderbridge.settings import (
    DispatcherEnvironment,
    FunctionEnvironment,
    ImporterEnvironment,
    IntakeEnvironment,
    PipelineEnvironment,
    SecretNames,
    SweeperEnvironment,
    validation_context,
)
from orderbridge_local.template_resources import load_template

ROOT = Path(__file__).resolve().parents[1]

#: functions/<name>/ -> the model its app.py reads.
MODELS: dict[str, type[FunctionEnvironment]] = {
    "intake": IntakeEnvironment,
    "dispatcher": DispatcherEnvironment,
    "importer": ImporterEnvironment,
    "sweeper": SweeperEnvironment,
}

REQUIRED = {"OUTCOME_TABLE": "outcomes", "CONFIG_BUCKET": "config", "ORDER_QUEUE_URL": "https://sqs/q"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def functions_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """functions/<name>/ -> the variables the template gives that function (Globals + its own)."""
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        name = Path(props["CodeUri"]).name
        found[name] = {**globals_env, **(props.get("Environment") or {}).get("Variables", {})}
    return found


def as_deployed(template: dict[str, Any], variables: dict[str, Any]) -> dict[str, str]:
    """The values a deploy with default parameters would set: a parameter's default for its Ref,
    a stand-in name for a resource's, literals as they are."""
    parameters = template.get("Parameters") or {}
    out = {}
    for name, value in variables.items():
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
            value = parameters[value["Ref"]]["Default"]
        elif isinstance(value, dict):
            value = f"stand-in-for-{name.lower()}"
        out[name] = str(value)
    return out


# --- the models against template.yaml -----------------------------------------------------------


def test_every_function_in_the_template_has_a_model(template: dict[str, Any]) -> None:
    assert set(functions_of(template)) == set(MODELS)
    assert {p.parent.name for p in (ROOT / "functions").glob("*/app.py")} == set(MODELS)


@pytest.mark.parametrize("function", sorted(MODELS))
def test_the_template_gives_every_required_variable(template: dict[str, Any], function: str) -> None:
    given = functions_of(template)[function]
    missing = MODELS[function].required_variables() - set(given)
    assert not missing, f"{function}: required but not set by template.yaml: {sorted(missing)}"


@pytest.mark.parametrize("function", sorted(MODELS))
def test_every_variable_the_template_gives_is_read(template: dict[str, Any], function: str) -> None:
    given = functions_of(template)[function]
    unread = set(given) - set(MODELS[function].variables())
    assert not unread, f"{function}: given by template.yaml, never read: {sorted(unread)}"


@pytest.mark.parametrize("function", sorted(MODELS))
def test_the_templates_values_are_valid(template: dict[str, Any], function: str) -> None:
    environ = as_deployed(template, functions_of(template)[function])
    env = MODELS[function].from_environ(environ)
    assert env.outcome_table == "stand-in-for-outcome_table"
    if isinstance(env, DispatcherEnvironment):
        assert env.max_receive_count == template["Parameters"]["MaxReceiveCount"]["Default"]


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "variables", "message"),
    [
        (
            DispatcherEnvironment,
            {"DELIVERY_LEASE_SECONDS": "abc"},
            "DELIVERY_LEASE_SECONDS='abc': not an integer",
        ),
        (
            DispatcherEnvironment,
            {"DELIVERY_LEASE_SECONDS": "1.5"},
            "DELIVERY_LEASE_SECONDS='1.5': not an integer",
        ),
        (
            DispatcherEnvironment,
            {"DELIVERY_LEASE_SECONDS": "0"},
            "DELIVERY_LEASE_SECONDS='0': must be at least 1",
        ),
        (
            DispatcherEnvironment,
            {"PROVIDER_TIMEOUT_SECONDS": "soon"},
            "PROVIDER_TIMEOUT_SECONDS='soon': not a number",
        ),
        (
            DispatcherEnvironment,
            {"PROVIDER_TIMEOUT_SECONDS": "nan"},
            "PROVIDER_TIMEOUT_SECONDS='nan': not a finite number",
        ),
        (DispatcherEnvironment, {"MAX_RECEIVE_COUNT": "-1"}, "MAX_RECEIVE_COUNT='-1': must be at least 1"),
        (
            DispatcherEnvironment,
            {"DELIVERY_LEASE_SECONDS": "10"},
            "DELIVERY_LEASE_SECONDS (10) must exceed PROVIDER_TIMEOUT_SECONDS + RATE_LIMIT_MAX_WAIT_SECONDS "
            "+ 1 s (16)",
        ),
        (
            DispatcherEnvironment,
            {"RETRY_BASE_DELAY_SECONDS": "60", "RETRY_MAX_DELAY_SECONDS": "30"},
            "RETRY_BASE_DELAY_SECONDS (60) must not exceed RETRY_MAX_DELAY_SECONDS (30)",
        ),
        (IntakeEnvironment, {"MAX_BODY_BYTES": "1e9"}, "MAX_BODY_BYTES='1e9': not an integer"),
        (IntakeEnvironment, {"API_BASE_PATH": "/shop,store"}, "API_BASE_PATH='/shop,store': each base path"),
        (PipelineEnvironment, {"CONFIG_BUCKET": "  "}, "CONFIG_BUCKET='  ': must not be empty"),
        (
            FunctionEnvironment,
            {"POWERTOOLS_LOG_LEVEL": "LOUD"},
            "POWERTOOLS_LOG_LEVEL='LOUD': not a log level",
        ),
        (FunctionEnvironment, {"RESOURCE_PREFIX": "/staging/"}, "RESOURCE_PREFIX='/staging/': not a secret"),
        (SweeperEnvironment, {"STALE_RECEIVED_SECONDS": "1800s"}, "STALE_RECEIVED_SECONDS='1800s': not an"),
        (ImporterEnvironment, {"IMPORT_STATE_TABLE": ""}, "IMPORT_STATE_TABLE: required, not set"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_variable(
    model: type[FunctionEnvironment], variables: dict[str, str], message: str
) -> None:
    environ = REQUIRED | {"IMPORT_STATE_TABLE": "imports"} | variables
    with pytest.raises(SettingsError) as err:
        model.from_environ(environ)
    assert str(err.value).startswith(message), str(err.value)
    assert len(err.value.problems) == 1, err.value.problems  # no knock-on problem from derived defaults
    assert err.value.code == "INVALID_ENVIRONMENT"


def test_every_missing_and_bad_variable_is_named_in_one_error_with_no_other_value() -> None:
    environ = {"DELIVERY_LEASE_SECONDS": "abc", "ORDER_QUEUE_URL": "https://sqs/kept-out-of-messages"}
    with pytest.raises(SettingsError) as err:
        IntakeEnvironment.from_environ(environ)
    assert err.value.problems == [
        "OUTCOME_TABLE: required, not set",
        "CONFIG_BUCKET: required, not set",
        "DELIVERY_LEASE_SECONDS='abc': not an integer",
    ]
    assert "kept-out-of-messages" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no pydantic dump chained


def test_a_long_value_is_cut_short_in_the_message() -> None:
    with pytest.raises(SettingsError) as err:
        DispatcherEnvironment.from_environ(REQUIRED | {"MAX_RECEIVE_COUNT": "9" * 500})
    assert len(str(err.value)) < 140 and "..." in str(err.value)


# --- defaults -------------------------------------------------------------------------------------


def test_defaults_with_only_the_required_variables() -> None:
    env = IntakeEnvironment.from_environ(REQUIRED)
    assert env.resource_prefix == "orderbridge"
    assert env.config_key == "orderbridge.json"
    assert (env.config_max_age_seconds, env.secret_max_age_seconds, env.outcome_ttl_days) == (60, 300, 400)
    assert (env.max_receive_count, env.delivery_lease_seconds) == (5, 120)
    assert (env.retry_base_delay_seconds, env.retry_max_delay_seconds) == (30.0, 900.0)
    assert (env.provider_timeout_seconds, env.rate_limit_max_wait_seconds) == (10.0, 5.0)
    assert (env.webhook_tolerance_seconds, env.max_body_bytes) == (300, 2 * 1024 * 1024)
    assert env.signing_secret_refresh_seconds == 10.0
    assert env.tracking_id_key_secret_id == "orderbridge/identity/tracking-id-key"
    assert env.client_hash_secret_id == "orderbridge/intake/client-hash-key"
    assert env.event_payload_bucket is None and env.dead_letter_queue_url is None
    assert env.rate_limit_table is None and env.api_base_paths == ()
    sweeper = SweeperEnvironment.from_environ({"OUTCOME_TABLE": "outcomes"})
    assert sweeper.stale_received.total_seconds() == 1800
    importer = ImporterEnvironment.from_environ(REQUIRED | {"IMPORT_STATE_TABLE": "imports"})
    assert (importer.import_safety_margin_seconds, importer.import_chunk_orders) == (20.0, 100)
    assert importer.import_bucket is None


def test_an_empty_variable_counts_as_unset_and_values_are_parsed() -> None:
    env = IntakeEnvironment.from_environ(
        REQUIRED
        | {"RATE_LIMIT_TABLE": "", "DELIVERY_LEASE_SECONDS": " 90 ", "API_BASE_PATH": "/shop/, /v2 ,"}
    )
    assert env.rate_limit_table is None
    assert env.delivery_lease_seconds == 90
    assert env.api_base_paths == ("/shop", "/v2")


def test_the_old_constant_names_are_the_models_names_and_defaults() -> None:
    assert constants.LEASE_SECONDS_ENV == "DELIVERY_LEASE_SECONDS"
    assert constants.LEASE_SECONDS_DEFAULT == 120
    assert constants.STALE_RECEIVED_SECONDS_DEFAULT == 1800
    assert SecretNames().tracking_id_key == constants.TRACKING_ID_KEY_SECRET_DEFAULT
    assert constants.CLIENT_HASH_SECRET_DEFAULT == "orderbridge/intake/client-hash-key"
    assert constants.SERVICE_NAME == "orderbridge"


def test_the_templates_defaults_are_the_models_defaults(template: dict[str, Any]) -> None:
    """A deploy with default parameters sets what the models assume when a variable is unset."""
    deployed = as_deployed(template, functions_of(template)["intake"])
    defaults = IntakeEnvironment.from_environ(REQUIRED)
    assert deployed["RESOURCE_PREFIX"] == defaults.resource_prefix
    assert deployed["POWERTOOLS_SERVICE_NAME"] == defaults.service_name
    assert deployed["POWERTOOLS_METRICS_NAMESPACE"] == defaults.metrics_namespace
    assert deployed["CONFIG_KEY"] == defaults.config_key
    assert int(deployed["MAX_RECEIVE_COUNT"]) == defaults.max_receive_count


# --- RESOURCE_PREFIX ------------------------------------------------------------------------------


def test_the_prefix_derives_every_secret_name() -> None:
    env = IntakeEnvironment.from_environ(REQUIRED | {"RESOURCE_PREFIX": "staging"})
    names = env.secret_names
    assert (names.providers, names.webhooks, names.imports) == (
        "staging/providers/",
        "staging/webhooks/",
        "staging/imports/",
    )
    assert env.client_hash_secret_id == "staging/intake/client-hash-key"
    assert env.tracking_id_key_secret_id == "staging/identity/tracking-id-key"
    explicit = IntakeEnvironment.from_environ(
        REQUIRED | {"RESOURCE_PREFIX": "staging", "TRACKING_ID_KEY_SECRET_ID": "arn:aws:secretsmanager:x"}
    )
    assert explicit.tracking_id_key_secret_id == "arn:aws:secretsmanager:x"  # the template's Ref wins


SAMPLE_FEED: dict[str, Any] = {
    "kind": "feed",
    "route": "default",
    "url": "https://shop.example/orders",
    "secret_id": "orderbridge/imports/feed",
    "auth": {"type": "bearer", "key": "token"},
    "paging": {"items": "orders", "next_cursor": "next_cursor", "cursor_param": "cursor"},
    "mapping": {
        "lines_path": "line_items",
        "fields": {
            "external_order_id": "id",
            "currency": "currency",
            "buyer.email": "email",
            "lines.sku": "sku",
            "lines.quantity": "quantity",
        },
    },
}
DOCUMENT: dict[str, Any] = {
    "destinations": {
        "bc": {
            "provider": "bigcommerce",
            "secret_id": "orderbridge/providers/bc",
            "base_url": "https://api.bigcommerce.com",
            "settings": {"store_hash": "abc123"},
        }
    },
    "routes": {"default": {"destinations": [{"destination": "bc", "catalog": {}}]}},
    "webhooks": {
        "shop": {
            "scheme": "shopify",
            "payload": "shopify",
            "route": "default",
            "secret_id": "orderbridge/webhooks/shop",
        }
    },
    "imports": {"feed": SAMPLE_FEED},
}


def under(prefix: str) -> dict[str, Any]:
    document = copy.deepcopy(DOCUMENT)
    document["destinations"]["bc"]["secret_id"] = f"{prefix}/providers/bc"
    document["webhooks"]["shop"]["secret_id"] = f"{prefix}/webhooks/shop"
    document["imports"]["feed"]["secret_id"] = f"{prefix}/imports/feed"
    return document


def test_the_sample_document_is_valid_under_the_default_prefix() -> None:
    assert validate_document(DOCUMENT).destinations["bc"].secret_id == "orderbridge/providers/bc"
    assert validate_document(DOCUMENT, resource_prefix="orderbridge")
    OrderbridgeConfig.model_validate(DOCUMENT)  # no context: the default prefix


def test_a_staging_secret_is_refused_under_the_default_prefix_and_accepted_under_staging() -> None:
    staging = under("staging")
    # An import source is checked as a field, the others with the whole document: one at a time.
    with pytest.raises(InvalidConfigurationError) as err:
        validate_document({k: v for k, v in staging.items() if k != "imports"})
    found = "\n".join(err.value.problems)
    assert (
        "destination 'bc': secret_id 'staging/providers/bc' must start with 'orderbridge/providers/'" in found
    )
    assert "secret_id 'staging/webhooks/shop' must start with 'orderbridge/webhooks/'" in found
    with pytest.raises(InvalidConfigurationError, match="secret_id must start with 'orderbridge/imports/'"):
        validate_document(staging)
    config = validate_document(staging, resource_prefix="staging")
    assert config.imports["feed"].secret_id == "staging/imports/feed"
    OrderbridgeConfig.model_validate(staging, context=validation_context("staging"))
    with pytest.raises(InvalidConfigurationError, match="must start with 'staging/imports/'"):
        validate_document(DOCUMENT, resource_prefix="staging")  # and the default's ids under staging
    without_imports = {k: v for k, v in DOCUMENT.items() if k != "imports"}
    with pytest.raises(InvalidConfigurationError, match="must start with 'staging/providers/'"):
        validate_document(without_imports, resource_prefix="staging")


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """An S3 client on a moto server of this module's own."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    finally:
        server.stop()


def test_the_config_store_checks_against_its_prefix(s3: Any) -> None:
    """wiring.config_store gives ConfigStore the function's RESOURCE_PREFIX; it checks with it."""
    s3.create_bucket(Bucket="config")
    s3.put_object(Bucket="config", Key="orderbridge.json", Body=json.dumps(under("staging")).encode())
    staging = ConfigStore(bucket="config", key="orderbridge.json", s3_client=s3, resource_prefix="staging")
    assert staging.load().destinations["bc"].secret_id == "staging/providers/bc"
    default = ConfigStore(bucket="config", key="orderbridge.json", s3_client=s3)
    with pytest.raises(InvalidConfigurationError, match="must start with 'orderbridge/"):
        default.load()


@pytest.mark.parametrize(
    ("function", "variable", "value", "message"),
    [
        ("intake", "MAX_BODY_BYTES", "2MB", "MAX_BODY_BYTES='2MB': not an integer"),
        ("dispatcher", "DELIVERY_LEASE_SECONDS", "abc", "DELIVERY_LEASE_SECONDS='abc': not an integer"),
        ("importer", "IMPORT_CHUNK_ORDERS", "0", "IMPORT_CHUNK_ORDERS='0': must be at least 1"),
        ("sweeper", "STALE_RECEIVED_SECONDS", "soon", "STALE_RECEIVED_SECONDS='soon': not an integer"),
    ],
)
def test_a_function_with_a_bad_variable_fails_at_import_naming_it(
    function: str, variable: str, value: str, message: str
) -> None:
    """The cold start itself (a fresh interpreter importing app.py) stops with the named error."""
    import os
    import subprocess
    import sys

    environ = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **REQUIRED,
        "IMPORT_STATE_TABLE": "imports",
        variable: value,
    }
    result = subprocess.run(
        [sys.executable, "-c", "import app"],
        cwd=ROOT / "functions" / function,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert f"orderbridge.exceptions.SettingsError: {message}" in result.stderr, result.stderr[-2000:]
