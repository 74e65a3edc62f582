"""Intake latency: form posts and signed Shopify webhooks on the local API, against a bare handler.

Starts the local system without its poller and serves two handlers the same way, each behind its
own `orderbridge_local.apigw.LocalApi` (the local API Gateway: HTTP request in, REST proxy event
to the handler, one invocation at a time like one Lambda instance):

* intake: the real `functions/intake/app.py`, freshly loaded with the deployed configuration
  cache age (60 s; the local run's own API uses 1 s, which would put an S3 read in one request
  a second). Forms are checked, mapped, deduplicated (Powertools idempotency in DynamoDB),
  recorded (RECEIVED) and enqueued; webhooks are also verified (HMAC over the raw body).
* bare: a handler that only enqueues the body to SQS (a queue of its own) and answers 202.

Every request is a new order (fresh submission id / Shopify order id, webhooks signed beforehand
with the local secret), sent from one client with keep-alive; the four series take turns, in a
rotating order. Prints a table of p50/p99 and writes bench/results/intake_latency.json.

    .venv/bin/python bench/intake_latency.py --requests 200
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from benchlib import ROOT, median, ms, percentile, quiet_function_logs, ratio, write_result
from rich.console import Console
from rich.table import Table

from orderbridge_local.apigw import LocalApi
from orderbridge_local.system import LocalSystem, Settings, load_function


def bare_handler(queue_url: str) -> Any:
    """The least an intake can do: put the body on a queue and answer 202."""
    sqs = boto3.client("sqs")

    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        tracking_id = f"ob_{uuid.uuid4().hex}"
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=json.dumps({"tracking_id": tracking_id, "body": event["body"]})
        )
        return {
            "statusCode": 202,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"tracking_id": tracking_id}),
        }

    return lambda_handler


@dataclass
class Series:
    name: str
    target: str  # intake | bare
    kind: str  # form | webhook
    url: str
    session: requests.Session = field(default_factory=requests.Session)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    aws_calls: Counter[str] = field(default_factory=Counter)  # the intake's clients only


def form_request() -> tuple[bytes, dict[str, str]]:
    sample = json.loads((ROOT / "events" / "api-form-json.json").read_text())
    body = json.loads(sample["body"])
    body["submission_id"] = f"lat-{uuid.uuid4().hex}"
    return json.dumps(body).encode(), dict(sample["headers"])


def webhook_request(secret: str) -> tuple[bytes, dict[str, str]]:
    # Imported here, after the local system has set the functions' environment: importing
    # orderbridge.intake earlier creates its Powertools Metrics without a namespace.
    from orderbridge.intake.signatures import sign_shopify

    sample = json.loads((ROOT / "events" / "api-webhook-shopify-orders-create.json").read_text())
    order = json.loads(sample["body"])
    order["id"] = int(uuid.uuid4().int % 10**13)
    order["name"] = f"#{order['id'] % 100000}"
    body = json.dumps(order).encode()
    headers = dict(sample["headers"])
    headers["X-Shopify-Event-Id"] = str(uuid.uuid4())
    headers["X-Shopify-Webhook-Id"] = str(uuid.uuid4())
    headers["X-Shopify-Hmac-Sha256"] = sign_shopify(body, secret)
    return body, headers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="timed requests per series (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per series first")
    parser.add_argument(
        "--config-max-age", type=int, default=60, help="intake's configuration cache, seconds (deployed: 60)"
    )
    args = parser.parse_args(argv)
    console = Console(width=120)

    started = time.monotonic()
    with LocalSystem(Settings(start_poller=False)) as system, contextlib.ExitStack() as stack:
        from orderbridge import clients, constants

        warnings.filterwarnings("ignore", message="No application metrics to publish")
        os.environ[constants.CONFIG_MAX_AGE_ENV] = str(args.config_max_age)
        intake = load_function("intake")
        quiet_function_logs()
        bare_queue = clients.client("sqs").create_queue(QueueName="orderbridge-bench-bare")["QueueUrl"]
        apis = {
            "intake": LocalApi(handler=intake.lambda_handler, function_name="IntakeFunction").start(),
            "bare": LocalApi(handler=bare_handler(bare_queue), function_name="BareEnqueue").start(),
        }
        for api in apis.values():
            stack.callback(api.shutdown)
        secret = system.secrets["orderbridge/webhooks/shopify-demo"]["secrets"][0]
        series = [
            Series("intake form post", "intake", "form", f"{apis['intake'].url}/forms/fk_demo0001"),
            Series("bare form post", "bare", "form", f"{apis['bare'].url}/forms/fk_demo0001"),
            Series(
                "intake Shopify webhook", "intake", "webhook", f"{apis['intake'].url}/webhooks/shopify-demo"
            ),
            Series("bare Shopify webhook", "bare", "webhook", f"{apis['bare'].url}/webhooks/shopify-demo"),
        ]

        current: list[Series] = []  # the series whose request is in flight (one at a time)

        def count_call(event_name: str, **_: Any) -> None:
            if current:
                _, service, operation = event_name.split(".", 2)
                current[0].aws_calls[f"{service} {operation}"] += 1

        for service in ("dynamodb", "sqs", "s3", "secretsmanager"):
            clients.client(service).meta.events.register("before-send", count_call)

        def send(s: Series, timed: bool) -> None:
            body, headers = form_request() if s.kind == "form" else webhook_request(secret)
            current[:] = [s] if timed else []
            t0 = time.perf_counter()
            response = s.session.post(s.url, data=body, headers=headers, timeout=30)
            elapsed = time.perf_counter() - t0
            if timed:
                s.latencies.append(elapsed)
                s.statuses[response.status_code] += 1

        # Intake's Powertools metrics print an EMF line to stdout per invocation: unread here.
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            for i in range(args.warmup + args.requests):
                order = series[i % len(series) :] + series[: i % len(series)]
                for s in order:
                    send(s, timed=i >= args.warmup)
    elapsed = time.monotonic() - started

    rows = []
    by_name = {s.name: s for s in series}
    for s in series:
        row: dict[str, Any] = {
            "series": s.name,
            "requests": len(s.latencies),
            "statuses": dict(s.statuses),
            "p50_ms": ms(percentile(s.latencies, 50), 2),
            "p90_ms": ms(percentile(s.latencies, 90), 2),
            "p99_ms": ms(percentile(s.latencies, 99), 2),
            "max_ms": ms(max(s.latencies), 2),
            "median_ms": ms(median(s.latencies), 2),
        }
        if s.target == "intake":
            row["aws_calls_per_request"] = {
                k: round(v / len(s.latencies), 2) for k, v in sorted(s.aws_calls.items())
            }
        if s.target == "intake":
            bare = by_name[s.name.replace("intake", "bare")]
            row["p50_vs_bare"] = ratio(percentile(s.latencies, 50), percentile(bare.latencies, 50), 1)
            row["p99_vs_bare"] = ratio(percentile(s.latencies, 99), percentile(bare.latencies, 99), 1)
            row["p50_minus_bare_ms"] = ms(percentile(s.latencies, 50) - percentile(bare.latencies, 50), 2)
        rows.append(row)

    table = Table(title=f"intake latency on the local API, {args.requests} requests per series")
    for col in ("series", "p50", "p90", "p99", "max", "p50 / bare", "p99 / bare", "statuses"):
        table.add_column(col, justify="left" if col in ("series", "statuses") else "right")
    for row in rows:
        table.add_row(
            row["series"],
            f"{row['p50_ms']:.1f} ms",
            f"{row['p90_ms']:.1f} ms",
            f"{row['p99_ms']:.1f} ms",
            f"{row['max_ms']:.1f} ms",
            f"{row['p50_vs_bare']:.1f}x" if "p50_vs_bare" in row else "-",
            f"{row['p99_vs_bare']:.1f}x" if "p99_vs_bare" in row else "-",
            " ".join(f"{k}x{v}" for k, v in sorted(row["statuses"].items())),
        )
    console.print(table)
    for row in rows:
        if "aws_calls_per_request" in row:
            calls = ", ".join(f"{k} {v:g}" for k, v in row["aws_calls_per_request"].items())
            console.print(f"  {row['series']}: AWS calls per request: {calls}")
    ok = all(set(row["statuses"]) == {202} for row in rows)
    write_result(
        "intake_latency",
        {
            "requests_per_series": args.requests,
            "config_max_age_seconds": args.config_max_age,
            "all_accepted": ok,
            "series": rows,
            "wall_seconds": round(elapsed, 1),
        },
    )
    if not ok:
        console.print("[red]some requests were not answered 202 (see statuses)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
