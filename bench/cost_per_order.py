"""Cost per order: a 10-record SQS batch through the real dispatcher handler, against the floor.

Starts the local system (moto's server, the provider sandboxes) without its poller, lifts the
BigCommerce sandbox's and the destination's rate limits out of the way (the shared limiter still
makes its DynamoDB calls, it just never waits), and loads a fresh dispatcher with the deployed
cache ages (configuration 60 s, secrets 300 s). Then, after a warm-up batch, each round:

* real: 10 new orders are put on the order queue, received as one batch (outside the timing) and
  handed to `lambda_handler` (timed). Every AWS call its clients make is recorded (botocore's
  `provide-client-params` and `before-send` events: operation, parameters, bytes on the wire),
  and so is every provider request (a `requests` response hook on the dispatcher's session).
* floor: the same calls replayed without the function: the provider requests with plain
  `requests`, the AWS calls with plain boto3 clients, same operations, tables and payloads
  (order and tracking ids swapped for fresh ones of the same length, the rate-limit bucket for a
  bench one, condition expressions dropped so a replay cannot be refused).

Real and floor alternate (which goes first flips every round); per-order times are medians over
rounds. Prints tables and writes bench/results/cost_per_order.json.

    .venv/bin/python bench/cost_per_order.py --batches 15
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import re
import secrets
import sys
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from benchlib import ROOT, median, ms, quiet_function_logs, ratio, write_result
from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table

from orderbridge.models.event import OrderEvent
from orderbridge_local.lambda_runtime import LocalContext
from orderbridge_local.poller import to_record
from orderbridge_local.system import LocalSystem, Settings, load_function

BATCH = 10
SERVICES = ("dynamodb", "sqs", "s3", "secretsmanager")
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
LIMITER_BUCKET = "provider#bc-demo"
FLOOR_BUCKET = "floor-aa#bc-demo"  # same length: the same bytes on the wire
EXPRESSION_NAME = re.compile(r"#[A-Za-z0-9_]+")
EXPRESSION_VALUE = re.compile(r":[A-Za-z0-9_]+")


# --- recording -------------------------------------------------------------------------------------


@dataclass
class AwsCall:
    service: str
    operation: str
    params: dict[str, Any]
    request_bytes: int = 0
    attempts: int = 0

    @property
    def table(self) -> str:
        return str(self.params.get("TableName", ""))


@dataclass
class HttpCall:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Records the calls of the clients it is attached to, while `active`."""

    active: bool = False
    calls: list[AwsCall | HttpCall] = field(default_factory=list)

    def attach_boto(self, client: Any) -> None:
        client.meta.events.register("provide-client-params", self._params)
        client.meta.events.register("before-send", self._send)

    def attach_session(self, session: requests.Session) -> None:
        session.hooks["response"].append(self._response)

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.active:
            service = model.service_model.service_name
            self.calls.append(AwsCall(service, model.name, copy.deepcopy(params)))

    def _send(self, request: Any, **_: Any) -> None:
        if self.active:
            last = next((c for c in reversed(self.calls) if isinstance(c, AwsCall)), None)
            if last is not None:
                last.request_bytes += len(request.body or b"")
                last.attempts += 1

    def _response(self, response: requests.Response, *_: Any, **__: Any) -> None:
        if self.active:
            r = response.request
            body = r.body.encode() if isinstance(r.body, str) else (r.body or b"")
            self.calls.append(HttpCall(str(r.method), str(r.url), dict(r.headers), body))

    def take(self) -> list[AwsCall | HttpCall]:
        calls, self.calls = self.calls, []
        return calls


# --- the floor -------------------------------------------------------------------------------------


def substitute(value: Any, swaps: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in swaps.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, bytes):
        for old, new in swaps.items():
            value = value.replace(old.encode(), new.encode())
        return value
    if isinstance(value, dict):
        return {k: substitute(v, swaps) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, swaps) for v in value]
    return value


def unconditional(params: dict[str, Any]) -> dict[str, Any]:
    """The same request without its condition (a replay must not be refused)."""
    params = dict(params)
    params.pop("ConditionExpression", None)
    used = " ".join(
        str(params.get(k, ""))
        for k in ("UpdateExpression", "KeyConditionExpression", "FilterExpression", "ProjectionExpression")
    )
    for key, pattern in (
        ("ExpressionAttributeNames", EXPRESSION_NAME),
        ("ExpressionAttributeValues", EXPRESSION_VALUE),
    ):
        if key in params:
            referenced = set(pattern.findall(used))
            kept = {k: v for k, v in params[key].items() if k in referenced}
            if kept:
                params[key] = kept
            else:
                del params[key]
    return params


def fresh_like(text: str) -> str:
    """A new id of the same length and prefix (so the replayed payloads keep their size)."""
    keep = max(0, len(text) - 12)
    return text[:keep] + secrets.token_hex(6)[: len(text) - keep]


class Floor:
    """Replays recorded calls with plain clients: what the batch costs without the function."""

    def __init__(self) -> None:
        self.clients = {s: boto3.client(s) for s in SERVICES}
        self.methods = {
            s: {api: method for method, api in c.meta.method_to_api_mapping.items()}
            for s, c in self.clients.items()
        }
        self.session = requests.Session()
        self.refused = 0
        self.spent: Counter[str] = Counter()  # seconds by kind of call, over every replay

    def replay(self, calls: list[AwsCall | HttpCall], ids: list[str]) -> float:
        swaps = {old: fresh_like(old) for old in ids} | {LIMITER_BUCKET: FLOOR_BUCKET}
        prepared: list[tuple[str, Any, Any]] = []
        for call in calls:  # everything prepared before the clock starts
            if isinstance(call, HttpCall):
                headers = {k: v for k, v in call.headers.items() if k.lower() != "content-length"}
                prepared.append(("provider", call, (headers, substitute(call.body, swaps))))
            else:
                params = unconditional(substitute(call.params, swaps))
                method = getattr(self.clients[call.service], self.methods[call.service][call.operation])
                prepared.append((call.service, method, params))
        started = time.perf_counter()
        for kind, target, payload in prepared:
            t0 = time.perf_counter()
            if kind == "provider":
                headers, body = payload
                self.session.request(target.method, target.url, headers=headers, data=body, timeout=10)
            else:
                try:
                    target(**payload)
                except ClientError:
                    self.refused += 1
            self.spent[kind] += time.perf_counter() - t0
        return time.perf_counter() - started


# --- orders ----------------------------------------------------------------------------------------


def new_orders(n: int) -> list[str]:
    """Queue message bodies: the sample order event of events/, each a new order."""
    sample = json.loads((ROOT / "events" / "sqs-order-event.json").read_text())
    template = json.loads(sample["Records"][0]["body"])
    bodies = []
    for _ in range(n):
        event = copy.deepcopy(template)
        event["order"]["external_order_id"] = f"COST-{uuid.uuid4().hex[:12]}"
        bodies.append(json.dumps(event))
    return bodies


def receive_batch(sqs: Any, queue_url: str, queue_arn: str, bodies: list[str]) -> dict[str, Any]:
    sqs.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)]
    )
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(messages) < len(bodies) and time.monotonic() < deadline:
        messages += sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=len(bodies) - len(messages),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
    return {"Records": [to_record(m, queue_arn) for m in messages]}


def delete_batch(sqs: Any, queue_url: str, event: dict[str, Any]) -> None:
    sqs.delete_message_batch(
        QueueUrl=queue_url,
        Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(event["Records"])],
    )


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=15, help="timed rounds (default 15)")
    args = parser.parse_args(argv)
    console = Console(width=120)

    started = time.monotonic()
    with LocalSystem(Settings(start_poller=False, provider_timeout=10)) as system:
        from orderbridge import clients, constants

        admin = f"{system.sandbox.url}/_sandbox/bigcommerce"
        requests.post(
            f"{admin}/config",
            json={"accounts": {"demo123": {"rate_limit": {"quota": 1_000_000, "window_ms": 1000}}}},
            timeout=10,
        ).raise_for_status()
        config = system.local_config()
        config["destinations"]["bc-demo"]["rate_limit"] = {
            "requests": 1_000_000,
            "per_seconds": 1,
            "burst": 1000,
        }
        system.upload_config(config)
        os.environ[constants.CONFIG_MAX_AGE_ENV] = str(constants.CONFIG_MAX_AGE_DEFAULT)
        function = load_function("dispatcher")
        quiet_function_logs()

        warnings.filterwarnings("ignore", message="No application metrics to publish")
        devnull = open(os.devnull, "w")  # noqa: SIM115
        recorder = Recorder()
        for service in SERVICES:
            recorder.attach_boto(clients.client(service))
        recorder.attach_session(function.dispatcher.sender._session)
        floor = Floor()
        sqs = clients.client("sqs")
        queue_arn = system.resources.queue_arns["OrderQueue"]

        def real_batch() -> tuple[float, list[AwsCall | HttpCall], list[str], bool]:
            bodies = new_orders(BATCH)
            event = receive_batch(sqs, system.queue_url, queue_arn, bodies)
            ids = [
                OrderEvent.model_validate_json(b).resolved_tracking_id(function.dispatcher.ids)
                for b in bodies
            ]
            ids += [json.loads(b)["order"]["external_order_id"] for b in bodies]
            context = LocalContext("DispatcherFunction", timeout_seconds=60)
            recorder.active = True
            with contextlib.redirect_stdout(devnull):  # the metrics (EMF) lines: printed, unread
                t0 = time.perf_counter()
                result = function.lambda_handler(event, context)
                elapsed = time.perf_counter() - t0
            recorder.active = False
            delete_batch(sqs, system.queue_url, event)
            ok = len(event["Records"]) == BATCH and result.get("batchItemFailures") == []
            return elapsed, recorder.take(), ids, ok

        # Warm-up: connections, caches (configuration, secrets), the first limiter item.
        _, last_calls, last_ids, all_ok = real_batch()
        floor.replay(last_calls, last_ids)

        floor.spent.clear()
        real_times: list[float] = []
        floor_times: list[float] = []
        recorded: list[list[AwsCall | HttpCall]] = []
        for r in range(args.batches):
            if r % 2:  # floor first, replaying the previous real batch
                floor_times.append(floor.replay(last_calls, last_ids))
            elapsed, last_calls, last_ids, ok = real_batch()
            all_ok = all_ok and ok
            real_times.append(elapsed)
            recorded.append(last_calls)
            if not r % 2:
                floor_times.append(floor.replay(last_calls, last_ids))
        created = requests.get(f"{admin}/stats", timeout=10).json()
        outcome_table = system.resources.tables["OutcomeTable"]
        ddb = clients.client("dynamodb")
        sizes = []
        for tracking_id in last_ids[:BATCH]:
            found = ddb.query(
                TableName=outcome_table,
                KeyConditionExpression="tracking_id = :t",
                ExpressionAttributeValues={":t": {"S": tracking_id}},
            )["Items"]
            sizes += [item_size(item) for item in found]
    elapsed_total = time.monotonic() - started

    # --- what one order costs ---------------------------------------------------------------------
    orders = BATCH * len(recorded)
    aws = [c for batch in recorded for c in batch if isinstance(c, AwsCall)]
    http = [c for batch in recorded for c in batch if isinstance(c, HttpCall)]
    per_operation = Counter(f"{c.service} {c.operation} {short_table(c.table)}".strip() for c in aws)
    ddb = [c for c in aws if c.service == "dynamodb"]
    ddb_writes = [c for c in ddb if c.operation in WRITE_OPERATIONS]
    real_per_order = [t / BATCH for t in real_times]
    floor_per_order = [t / BATCH for t in floor_times]
    paired = [a / b for a, b in zip(real_times, floor_times, strict=True)]
    outcome_writes = [c for c in ddb_writes if short_table(c.table) == "OutcomeTable"]
    other_writes = [c for c in ddb_writes if short_table(c.table) != "OutcomeTable"]
    item_bytes = median(sizes)
    # A write costs ceil(size / 1 KB) WCU, size being the larger of the item before and after;
    # the final outcome item is the largest it gets, so this is an upper bound.
    wcu = (len(outcome_writes) * math.ceil(item_bytes / 1024) + len(other_writes)) / orders
    result = {
        "batch_size": BATCH,
        "rounds": args.batches,
        "all_succeeded": all_ok,
        "real_ms_per_order": ms(median(real_per_order), 2),
        "floor_ms_per_order": ms(median(floor_per_order), 2),
        "overhead_ms_per_order": ms(median(real_per_order) - median(floor_per_order), 2),
        "real_vs_floor": ratio(median(paired), 1),
        "real_ms_per_order_min_max": [ms(min(real_per_order), 2), ms(max(real_per_order), 2)],
        "floor_ms_per_order_min_max": [ms(min(floor_per_order), 2), ms(max(floor_per_order), 2)],
        "provider_requests_per_order": round(len(http) / orders, 2),
        "aws_calls_per_order": round(len(aws) / orders, 2),
        "dynamodb_calls_per_order": round(len(ddb) / orders, 2),
        "dynamodb_writes_per_order": round(len(ddb_writes) / orders, 2),
        "dynamodb_bytes_written_per_order": round(sum(c.request_bytes for c in ddb_writes) / orders),
        "dynamodb_bytes_sent_per_order": round(sum(c.request_bytes for c in ddb) / orders),
        "outcome_item_bytes_final": round(item_bytes),
        "dynamodb_wcu_per_order_at_most": round(wcu, 2),
        "aws_retries": sum(max(0, c.attempts - 1) for c in aws),
        "calls_per_order_by_operation": {k: round(v / orders, 2) for k, v in sorted(per_operation.items())},
        "bytes_per_call_by_operation": {
            k: round(
                sum(
                    c.request_bytes
                    for c in aws
                    if f"{c.service} {c.operation} {short_table(c.table)}".strip() == k
                )
                / v
            )
            for k, v in sorted(per_operation.items())
        },
        "floor_refused_calls": floor.refused,
        "floor_ms_per_order_by_kind": {k: ms(v / orders, 2) for k, v in sorted(floor.spent.items())},
        "sandbox_stats": created,
        "samples_ms_per_batch": {
            "real": [ms(t, 2) for t in real_times],
            "floor": [ms(t, 2) for t in floor_times],
        },
        "wall_seconds": round(elapsed_total, 1),
    }

    table = Table(title=f"cost per order: {BATCH}-record batches, median of {args.batches} rounds")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("real dispatcher, per order", f"{result['real_ms_per_order']:.2f} ms")
    table.add_row(
        "floor (same calls, plain requests + boto3), per order", f"{result['floor_ms_per_order']:.2f} ms"
    )
    table.add_row("overhead of the function, per order", f"{result['overhead_ms_per_order']:.2f} ms")
    table.add_row("real / floor (median of paired rounds)", f"{result['real_vs_floor']:.1f}x")
    for kind, spent in result["floor_ms_per_order_by_kind"].items():
        table.add_row(f"  floor: {kind} calls, per order (mean)", f"{spent:.2f} ms")
    table.add_row("provider requests per order", f"{result['provider_requests_per_order']:g}")
    table.add_row("AWS calls per order", f"{result['aws_calls_per_order']:g}")
    table.add_row("DynamoDB calls per order", f"{result['dynamodb_calls_per_order']:g}")
    table.add_row("DynamoDB writes per order", f"{result['dynamodb_writes_per_order']:g}")
    table.add_row(
        "DynamoDB bytes written per order (write requests)", f"{result['dynamodb_bytes_written_per_order']} B"
    )
    table.add_row(
        "DynamoDB bytes sent per order (all requests)", f"{result['dynamodb_bytes_sent_per_order']} B"
    )
    table.add_row("outcome item size when final (DynamoDB sizing)", f"{result['outcome_item_bytes_final']} B")
    table.add_row("DynamoDB write units per order (at most)", f"{result['dynamodb_wcu_per_order_at_most']:g}")
    table.add_row("every order created (no batch item failures)", "yes" if all_ok else "NO")
    console.print(table)

    ops = Table(title="AWS calls per order, by operation (recorded from the real dispatcher)")
    ops.add_column("service operation table")
    ops.add_column("calls / order", justify="right")
    ops.add_column("bytes / call", justify="right")
    for key, per in result["calls_per_order_by_operation"].items():
        ops.add_row(key, f"{per:g}", str(result["bytes_per_call_by_operation"][key]))
    console.print(ops)

    write_result("cost_per_order", result)
    return 0 if all_ok else 1


def item_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: attribute names plus values."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: dict[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(x) for k, x in v.items())
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: x}) for x in v)
    return 0


def short_table(name: str) -> str:
    return name.removeprefix("orderbridge-local-")


if __name__ == "__main__":
    sys.exit(main())
