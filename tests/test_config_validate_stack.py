"""`orderbridge config validate` against a deployed stack (issue 15), on moto's server over HTTP: a
CloudFormation stack with a ConfigBucket, the document in it (or a FILE), and the secrets it names.

The server is this module's own, and its resources live in a region of their own: moto keeps state
per process and region, so the harness's stack (us-east-1) never meets these names."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from orderbridge_ops import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE: dict[str, Any] = json.loads((ROOT / "config" / "production.example.json").read_text())
REGION = "ap-southeast-2"
STACK_TEMPLATE = json.dumps(
    {
        "Parameters": {"ResourcePrefix": {"Type": "String", "Default": "orderbridge"}},
        "Resources": {"ConfigBucket": {"Type": "AWS::S3::Bucket"}},
    }
)


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, Any]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        clients = {
            service: boto3.client(
                service,
                endpoint_url=endpoint,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            for service in ("cloudformation", "s3", "secretsmanager")
        }
        yield {"endpoint": endpoint, **clients}
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a deployed stack's operator has: credentials from the environment, no profile."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # one problem, one line


class Stack:
    """One stack of this test's own, and a document whose secrets are its own too."""

    def __init__(self, aws: dict[str, Any], prefix: str = "orderbridge") -> None:
        self.aws = aws
        uid = uuid.uuid4().hex[:8]
        self.name = f"ob-validate-{uid}"
        aws["cloudformation"].create_stack(
            StackName=self.name,
            TemplateBody=STACK_TEMPLATE,
            Parameters=[{"ParameterKey": "ResourcePrefix", "ParameterValue": prefix}],
        )
        self.bucket = aws["cloudformation"].describe_stack_resource(
            StackName=self.name, LogicalResourceId="ConfigBucket"
        )["StackResourceDetail"]["PhysicalResourceId"]
        self.store_secret = f"{prefix}/providers/bc-{uid}"
        self.webhook_secret = f"{prefix}/webhooks/shopify-{uid}"
        self.document = copy.deepcopy(EXAMPLE)
        self.document["destinations"]["bc-main"]["secret_id"] = self.store_secret
        self.document["webhooks"]["shopify-demo"]["secret_id"] = self.webhook_secret

    def put_secret(self, secret_id: str, value: str) -> None:
        self.aws["secretsmanager"].create_secret(Name=secret_id, SecretString=value)

    def set_good_secrets(self) -> None:
        self.put_secret(self.store_secret, json.dumps({"access_token": "bc-token-not-shown"}))
        self.put_secret(self.webhook_secret, json.dumps({"secrets": ["whsec-not-shown"]}))

    def upload(self, document: dict[str, Any] | None = None, key: str = "orderbridge.json") -> None:
        body = json.dumps(self.document if document is None else document).encode()
        self.aws["s3"].put_object(Bucket=self.bucket, Key=key, Body=body)


@pytest.fixture
def stack(aws: dict[str, Any]) -> Stack:
    return Stack(aws)


@pytest.fixture
def validate(aws: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `orderbridge config validate ARGS --endpoint-url <moto> --region <REGION>`: (code, out, err)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(["config", "validate", *args, "--endpoint-url", aws["endpoint"], "--region", REGION])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_the_uploaded_document_with_its_secrets_set_is_valid(stack: Stack, validate: Any) -> None:
    stack.set_good_secrets()
    stack.upload()
    code, out, err = validate("--stack", stack.name)
    assert code == 0, err
    assert f"s3://{stack.bucket}/orderbridge.json: valid" in out
    assert "its 2 secrets are set" in out


def test_no_uploaded_document_is_exit_2_naming_where_it_was_looked_for(stack: Stack, validate: Any) -> None:
    code, out, err = validate("--stack", stack.name)
    assert code == 2
    assert f"no configuration uploaded at s3://{stack.bucket}/orderbridge.json" in err
    assert "Traceback" not in err and not out


def test_a_stack_that_does_not_exist_is_exit_2(validate: Any) -> None:
    code, _, err = validate("--stack", f"no-such-stack-{uuid.uuid4().hex[:6]}")
    assert code == 2
    assert "does not exist" in err and "--stack" in err


def test_missing_placeholder_and_keyless_secrets_are_exit_1_each_named_never_a_value(
    stack: Stack, aws: dict[str, Any], validate: Any
) -> None:
    document = copy.deepcopy(stack.document)
    third = f"{stack.store_secret}-third"
    document["destinations"]["bc-third"] = {**document["destinations"]["bc-main"], "secret_id": third}
    document["routes"]["third"] = copy.deepcopy(document["routes"]["default"])
    document["routes"]["third"]["destinations"][0]["destination"] = "bc-third"
    stack.upload(document)
    # bc-main: never created; the webhook's: the template's placeholder; bc-third: no access_token
    stack.put_secret(stack.webhook_secret, json.dumps({"placeholder": True, "token": "generated-not-shown"}))
    stack.put_secret(third, json.dumps({"api_key": "wrong-key-not-shown"}))

    code, out, err = validate("--stack", stack.name)

    assert code == 1, err
    lines = [line.strip() for line in err.splitlines() if line.strip().startswith("- ")]
    assert len(lines) == 3, err
    missing, placeholder, keyless = (
        next(line for line in lines if what in line)
        for what in ("destination 'bc-main'", "webhook source 'shopify-demo'", "destination 'bc-third'")
    )
    assert stack.store_secret in missing and "does not exist" in missing and "SECRET_NOT_FOUND" in missing
    assert stack.webhook_secret in placeholder and "SECRET_PLACEHOLDER" in placeholder
    assert third in keyless and "'access_token'" in keyless and "SECRET_KEY_MISSING" in keyless
    assert "not-shown" not in out + err
    assert "valid" not in out


def test_a_webhook_secret_without_a_signing_key_is_named(stack: Stack, validate: Any) -> None:
    stack.set_good_secrets()
    stack.aws["secretsmanager"].put_secret_value(
        SecretId=stack.webhook_secret, SecretString=json.dumps({"secrets": [], "note": "rotating-not-shown"})
    )
    stack.upload()
    code, _, err = validate("--stack", stack.name)
    assert code == 1
    assert f"webhook source 'shopify-demo' secret_id '{stack.webhook_secret}': has no signing key" in err
    assert "not-shown" not in err


def test_a_file_is_validated_instead_of_the_uploaded_document(
    stack: Stack, validate: Any, tmp_path: Path
) -> None:
    stack.set_good_secrets()
    broken = copy.deepcopy(stack.document)
    broken["destinations"]["bc-main"]["provider"] = "bigcommerse"
    stack.upload(broken)
    good = tmp_path / "prod.json"
    good.write_text(json.dumps(stack.document))

    code, out, err = validate(str(good), "--stack", stack.name)
    assert code == 0, err
    assert f"{good} (for s3://{stack.bucket}/orderbridge.json): valid" in out

    code, _, err = validate("--stack", stack.name)  # the uploaded one is what the functions refuse
    assert code == 1
    assert "unknown provider 'bigcommerse'" in err


def test_a_file_with_a_missing_secret_is_refused_before_it_is_uploaded(
    stack: Stack, validate: Any, tmp_path: Path
) -> None:
    path = tmp_path / "prod.json"
    path.write_text(json.dumps(stack.document))
    code, _, err = validate(str(path), "--stack", stack.name)
    assert code == 1
    assert err.count("SECRET_NOT_FOUND") == 2


def test_bucket_and_key_name_the_document_directly(stack: Stack, validate: Any) -> None:
    stack.set_good_secrets()
    stack.upload(key="staging/orderbridge.json")
    code, out, err = validate("--bucket", stack.bucket, "--key", "staging/orderbridge.json")
    assert code == 0, err
    assert f"s3://{stack.bucket}/staging/orderbridge.json: valid" in out

    code, _, err = validate("--bucket", stack.bucket)  # the default key has nothing
    assert code == 2
    assert f"no configuration uploaded at s3://{stack.bucket}/orderbridge.json" in err

    code, _, err = validate("--bucket", f"no-such-bucket-{uuid.uuid4().hex[:6]}")
    assert code == 2
    assert "no bucket" in err


def test_secret_ids_are_checked_against_the_stacks_resource_prefix(
    aws: dict[str, Any], validate: Any
) -> None:
    staging = Stack(aws, prefix="ob-staging")
    staging.set_good_secrets()
    staging.upload()
    code, out, err = validate("--stack", staging.name)
    assert code == 0, err
    assert "valid" in out

    code, _, err = validate("--stack", staging.name, "--resource-prefix", "orderbridge")
    assert code == 1
    assert f"secret_id {staging.store_secret!r} must start with 'orderbridge/providers/'" in err


def test_an_invalid_document_names_its_problems_and_leaves_secrets_for_later(
    stack: Stack, validate: Any
) -> None:
    document = copy.deepcopy(stack.document)
    document["forms"]["fk_shop0001"]["route"] = "nowhere"
    stack.upload(document)
    code, _, err = validate("--stack", stack.name)
    assert code == 1
    assert "form 'fk_shop0001' names unknown route 'nowhere'" in err
    assert "secrets are checked once the document is valid" in err


def test_without_a_file_or_a_place_there_is_nothing_to_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "validate"]) == 2
    assert "nothing to validate" in capsys.readouterr().err
    assert cli.main(["config", "validate", "x.json", "--key", "k.json"]) == 2
    assert "--key needs" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "validate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes: 0 valid; 1 invalid" in out and "no configuration uploaded at s3://" in out


def test_local_reads_the_local_runs_bucket_from_its_state_file(
    stack: Stack,
    aws: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--local`: the bucket, the endpoint and the region come from `.orderbridge-local.json`."""
    stack.set_good_secrets()
    stack.upload()
    state = {"endpoint_url": aws["endpoint"], "region": REGION, "config_bucket": stack.bucket}
    (tmp_path / ".orderbridge-local.json").write_text(json.dumps(state))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # the local run needs none
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    capsys.readouterr()
    assert cli.main(["config", "validate", "--local"]) == 0, capsys.readouterr().err
    assert f"s3://{stack.bucket}/orderbridge.json: valid" in capsys.readouterr().out
    # FILE with --local: ${...} placeholders are the local run's to fill in
    local_file = tmp_path / "local.json"
    document = copy.deepcopy(stack.document)
    document["destinations"]["bc-main"]["base_url"] = "${SANDBOX_URL}"
    local_file.write_text(json.dumps(document))
    assert cli.main(["config", "validate", str(local_file), "--local"]) == 0, capsys.readouterr().err
    assert cli.main(["config", "validate", str(local_file), "--stack", stack.name, "--local"]) == 0
    capsys.readouterr()
    assert cli.main(["config", "validate", str(local_file), "--offline"]) == 1  # for AWS: not filled in
    assert "${SANDBOX_URL} left in the document" in capsys.readouterr().err


def test_the_operator_cli_derives_the_tracking_id_key_from_the_stacks_prefix(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`orderbridge import` and `orderbridge retry` compute tracking ids with the stack's own key:
    a stack deployed with ResourcePrefix=ob-staging keeps it at ob-staging/identity/tracking-id-key."""
    from orderbridge_ops.connect import Connection, Target

    monkeypatch.delenv("TRACKING_ID_KEY_SECRET_ID", raising=False)
    monkeypatch.delenv("RESOURCE_PREFIX", raising=False)
    staging = Stack(aws, prefix="ob-staging")
    conn = Connection(Target(region=REGION, endpoint_url=aws["endpoint"], stack_name=staging.name))
    assert conn.tracking_id_key_secret() == "ob-staging/identity/tracking-id-key"
    assert Connection(Target(region=REGION, endpoint_url=aws["endpoint"])).tracking_id_key_secret() == (
        "orderbridge/identity/tracking-id-key"
    )
    monkeypatch.setenv("RESOURCE_PREFIX", "other")
    assert Connection(Target(region=REGION)).tracking_id_key_secret() == "other/identity/tracking-id-key"
    monkeypatch.setenv("TRACKING_ID_KEY_SECRET_ID", "explicit/key")
    assert Connection(Target(region=REGION)).tracking_id_key_secret() == "explicit/key"
