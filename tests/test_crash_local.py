"""Crash tests of the local run: the functions' process is SIGKILLed at chosen points and restarted.

moto's server and the provider sandboxes run in processes of their own (tests/crashlib.py), so
AWS's and the providers' state outlive the functions, as they do when Lambda kills a function.
The first tests check the kill point machinery itself (no processes); the rest kill for real.
"""

from __future__ import annotations

import json
import time
import types
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from orderbridge.intake.signatures import sign_shopify
from orderbridge.models.outcome import OutcomeStatus
from orderbridge_local.killpoints import KillPoints, parse
from tests.crashlib import CrashableRun

FORM = "/forms/fk_demo0001"
SHOPIFY_SECRET = "shpss_local_demo_secret"  # config/local-secrets.json
SIGKILLED = -9


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def form_body() -> bytes:
    return json.dumps(
        {
            "submission_id": _uid(),
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "address": {"address1": "12 Analytical Row", "city": "London", "zip": "N1 9GU", "country": "GB"},
            "items": [{"sku": "TEE-BLUE-M", "quantity": 2}],
        }
    ).encode()


def shopify_webhook(order_id: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": order_id,
            "email": "linus@example.com",
            "currency": "EUR",
            "billing_address": {
                "first_name": "Linus",
                "last_name": "T",
                "address1": "Kaivokatu 1",
                "city": "Helsinki",
                "zip": "00100",
                "country_code": "FI",
            },
            "line_items": [{"sku": "TEE-BLUE-L", "title": "Tee", "quantity": 1, "price": "25.00"}],
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET),
    }
    return body, headers


# --- the kill point machinery, in this process -----------------------------------------------------


class Reached(Exception):
    """Stands in for SIGKILL in the in-process tests."""


def _recording() -> tuple[list[str], Any]:
    fired: list[str] = []

    def kill(entry: str) -> None:
        fired.append(entry)
        raise Reached(entry)

    return fired, kill


def test_kill_point_syntax():
    [a, b, c, d] = parse(
        " after-call.sqs.SendMessage#2, refuse(ThrottlingException):before-call.dynamodb.PutItem#*,"
        "provider-answered.bigcommerce.POST,mid-batch.1"
    )
    assert (a.action, a.point, a.nth) == ("kill", "after-call.sqs.SendMessage", 2)
    assert (b.action, b.code, b.point, b.nth) == (
        "refuse",
        "ThrottlingException",
        "before-call.dynamodb.PutItem",
        None,
    )
    assert (c.point, c.nth) == ("provider-answered.bigcommerce.POST", 1)
    assert (d.point, d.is_botocore) == ("mid-batch.1", False)
    assert parse(None) == [] and parse("") == []
    for bad in (
        "nowhere",
        "refuse:mid-batch",
        "kill(X):rate-limit-wait",
        "after-call.sqs.SendMessage#0",
        "a b",
    ):
        with pytest.raises(ValueError):
            parse(bad)


def test_local_points_fire_on_the_nth_hit_and_match_below_their_name():
    fired, kill = _recording()
    points = KillPoints(parse("provider-answered#2,mid-batch.2"), kill=kill)
    points.reach("provider-answered.bigcommerce.GET")  # 1st hit of provider-answered: no
    points.reach("mid-batch.1")  # not mid-batch.2
    points.reach("batch-done")
    with pytest.raises(Reached):
        points.reach("provider-answered.bigcommerce.POST")
    with pytest.raises(Reached):
        points.reach("mid-batch.2")
    points.reach("provider-answered.bigcommerce.POST")  # fired once: never again
    assert fired == ["provider-answered#2", "mid-batch.2"]


def test_rate_limit_wait_patches_only_the_given_module():
    fired, kill = _recording()
    module = types.SimpleNamespace(time=time)
    KillPoints(parse("rate-limit-wait"), kill=kill).install_rate_limit_wait(module)  # type: ignore[arg-type]
    module.time.sleep(0)  # no wait: not a rate-limit wait
    assert module.time.monotonic() > 0  # everything else is the real module
    assert time.sleep is not module.time.sleep
    with pytest.raises(Reached):
        module.time.sleep(0.01)
    assert fired == ["rate-limit-wait"]


def test_botocore_points_kill_or_refuse_before_the_request_goes_out():
    fired, kill = _recording()
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    made = {
        s: session.client(s, endpoint_url="http://127.0.0.1:9")
        for s in ("sqs", "dynamodb", "s3", "secretsmanager")
    }  # type: ignore[call-overload]
    points = KillPoints(parse("refuse:before-call.dynamodb.PutItem,before-call.sqs.SendMessage"), kill=kill)
    points.install_botocore(made.__getitem__)
    with pytest.raises(ClientError) as refused:
        made["dynamodb"].put_item(TableName="t", Item={"pk": {"S": "1"}})
    assert refused.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    with pytest.raises(Reached):
        made["sqs"].send_message(QueueUrl="http://127.0.0.1:9/1/q", MessageBody="x")
    assert fired == ["before-call.sqs.SendMessage"]


# --- real kills ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_run() -> Iterator[CrashableRun]:
    with CrashableRun() as run:
        yield run


@pytest.fixture
def run(crash_run: CrashableRun) -> Iterator[CrashableRun]:
    """The shared moto + sandboxes; no functions process survives a test, and the queue is left empty."""
    crash_run.kill()
    yield crash_run
    crash_run.kill()
    crash_run.clear_queue()


# The exactly-once cases with real kills (after the queue send, after the provider answered, during
# a rate-limit wait, mid-batch) are rows of the fault matrix: tests/test_reliability.py.


def test_refused_aws_call_fails_the_request_without_killing(run):
    run.start_functions(kill_at="refuse:before-call.sqs.SendMessage#1")
    refused = run.post(FORM, form_body(), {"Content-Type": "application/json"})
    assert refused.status_code >= 500, refused.text
    assert run.alive
    assert "kill point refuse:before-call.sqs.SendMessage#1 reached: refusing SendMessage" in run.log()
    again = run.post(FORM, form_body(), {"Content-Type": "application/json"})
    assert again.status_code == 202, again.text
    assert [o.status for o in run.wait_final(again.json()["tracking_id"])] == [OutcomeStatus.SUCCEEDED]


def test_mid_batch_wrapper_keeps_the_record_handlers_signature():
    import inspect

    fired, kill = _recording()

    def record_handler(record: Any, lambda_context: Any = None) -> Any:
        return lambda_context

    def lambda_handler(event: dict[str, Any], context: Any) -> list[Any]:
        return [function.record_handler(record=r, lambda_context=context) for r in event["Records"]]

    function = types.SimpleNamespace(record_handler=record_handler, lambda_handler=lambda_handler)
    handler = KillPoints(parse("batch-done"), kill=kill).instrument_dispatcher(function)  # type: ignore[arg-type]
    # Powertools passes lambda_context only to a record handler whose signature names it
    assert "lambda_context" in inspect.signature(function.record_handler).parameters
    with pytest.raises(Reached):
        handler({"Records": [1, 2]}, "ctx")
    assert fired == ["batch-done"]
