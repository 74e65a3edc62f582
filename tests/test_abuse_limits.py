"""Form post limits per client and per form key, held in DynamoDB across intake instances.

Two separate intake instances (each its own `functions/intake/app.py` module behind its own
local API, as two Lambda execution environments) share moto's rate-limit table. Posts are
spread over both; the limit still holds in total. Bodies are invalid on purpose: the limit is
taken before parsing, so each post counts and none creates an order.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from orderbridge import clients
from orderbridge_local.apigw import LocalApi
from orderbridge_local.system import load_function


def _uid() -> str:
    return uuid.uuid4().hex[:10]


PROBE_ORIGIN = "http://probe.test"


def post(
    api: str, path: str, *, client_ip: str = "127.0.0.1", method: str = "POST"
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """POST `{}` from a chosen loopback address (API Gateway's sourceIp)."""
    url = urlparse(api)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(client_ip, 0))
    headers = {"Content-Type": "application/json"}
    if method == "OPTIONS":
        headers["Origin"] = PROBE_ORIGIN
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(r.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def instances(harness) -> Iterator[tuple[str, str]]:
    apis = [
        LocalApi(handler=load_function("intake").lambda_handler, function_name="IntakeFunction").start()
        for _ in range(2)
    ]
    yield apis[0].url, apis[1].url
    for api in apis:
        api.shutdown()


def add_form(harness: Any, apis: tuple[str, str], limits: dict[str, Any] | None) -> str:
    """A new form key in the configuration document, once both instances see it."""
    key = f"fk_rl{_uid()}"
    document = harness.system.local_config()
    document["forms"][key] = {"route": "default", "source": "abuse-test", "allowed_origins": [PROBE_ORIGIN]}
    if limits is not None:
        document["forms"][key]["rate_limit"] = limits
    harness.system.upload_config(document)
    deadline = time.monotonic() + 15
    for api in apis:  # each instance caches the document (1 s locally); preflights are not limited
        while post(api, f"/forms/{key}", method="OPTIONS")[0] != 204:
            assert time.monotonic() < deadline, "the new form never became visible"
            time.sleep(0.2)
    return key


@pytest.fixture
def form(harness, instances) -> Iterator[Any]:
    """Add a form with the given limits (the configuration document is restored afterwards)."""
    yield lambda **limits: add_form(harness, instances, limits)
    harness.system.upload_config()


def test_per_client_limit_holds_across_two_instances(instances, form):
    a, b = instances
    key = form(per_client={"requests": 3, "per_seconds": 3600, "burst": 3}, per_form=None)
    path = f"/forms/{key}"
    # three posts from one client, spread over both instances: allowed (and invalid: 422)
    assert [post(api, path)[0] for api in (a, b, a)] == [422, 422, 422]
    status, headers, body = post(b, path)  # each instance alone has seen at most two
    assert status == 429
    assert body["error"]["code"] == "RATE_LIMITED" and set(body["error"]) == {"code", "message", "fields"}
    assert int(headers["retry-after"]) >= 1
    assert post(a, path)[0] == 429
    # another client of the same form is not held back by the first one's limit
    assert post(b, path, client_ip="127.0.0.2")[0] == 422


def test_per_form_limit_holds_across_clients_and_instances(instances, form):
    a, b = instances
    key = form(per_client=None, per_form={"requests": 2, "per_seconds": 3600, "burst": 2})
    path = f"/forms/{key}"
    assert post(a, path, client_ip="127.0.0.1")[0] == 422
    assert post(b, path, client_ip="127.0.0.2")[0] == 422
    status, headers, body = post(a, path, client_ip="127.0.0.3")
    assert (status, body["error"]["code"]) == (429, "RATE_LIMITED") and int(headers["retry-after"]) >= 1


def test_default_limits_apply_to_a_form_without_settings(instances, harness):
    """No rate_limit in the config: the defaults (20 per minute per client, burst 10) hold."""
    key = add_form(harness, instances, None)
    try:
        statuses = [post(instances[i % 2], f"/forms/{key}", client_ip="127.0.0.4")[0] for i in range(12)]
    finally:
        harness.system.upload_config()
    assert statuses[:10] == [422] * 10 and 429 in statuses[10:]


def test_the_table_holds_a_keyed_hash_never_the_client_ip(instances, form, harness):
    key = form(per_client={"requests": 5, "per_seconds": 60, "burst": 5})
    post(instances[0], f"/forms/{key}", client_ip="127.0.0.5")
    table = harness.system.resources.tables["RateLimitTable"]
    items = clients.client("dynamodb").scan(TableName=table)["Items"]
    buckets = [i["bucket"]["S"] for i in items if key in i["bucket"]["S"]]
    assert f"intake:form:{key}" in buckets
    [client] = [b for b in buckets if b.startswith(f"intake:client:{key}:")]
    assert re.fullmatch(r"[0-9a-f]{32}", client.rsplit(":", 1)[1])
    assert not any("127.0.0" in str(i) for i in items)


def test_limits_are_per_form_key_and_spare_preflights(instances, form):
    key = form(per_client={"requests": 1, "per_seconds": 3600, "burst": 1}, per_form=None)
    assert post(instances[0], f"/forms/{key}")[0] == 422
    assert post(instances[1], f"/forms/{key}")[0] == 429
    assert post(instances[1], f"/forms/{key}", method="OPTIONS")[0] == 204
    # the limit is per form key: another form of the same client still answers normally
    assert post(instances[1], "/forms/fk_demo0001")[0] == 422
