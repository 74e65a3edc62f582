"""Throughput under a provider's rate limit, across concurrent dispatcher instances.

Starts the local system with several dispatcher workers (each its own "execution environment"),
configures the BigCommerce sandbox account at a known limit (BigCommerce's own 150 requests per
30 s by default; the run is kept short by the number of orders, not by speeding time up) and the
destination's shared limit to match, puts N orders on the queue at once and waits until every one
is final. Prints a table and writes bench/results/throughput.json.

moto runs in a process of its own, as AWS's side never shares a Lambda's GIL. Even so this 2-core
machine, not the limiter, bounds the run at higher rates: moto spends 10-20 ms of CPU on each
conditional DynamoDB write (about four per order); `--window 15` (10 per second) shows it.

    .venv/bin/python bench/throughput.py --orders 2000 --workers 4
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import requests
from rich.console import Console
from rich.table import Table

from orderbridge_local.system import LocalSystem, Settings

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--quota", type=int, default=150, help="provider requests per window")
    parser.add_argument(
        "--window", type=float, default=30.0, help="provider window in seconds (BigCommerce: 30)"
    )
    parser.add_argument(
        "--moto-in-process",
        action="store_true",
        help="moto in this process (sharing its GIL with the dispatchers), as the tests run it",
    )
    args = parser.parse_args(argv)
    console = Console(width=120)

    settings = Settings(
        workers=args.workers,
        visibility_timeout=30,
        max_receive_count=10,
        provider_timeout=10,
        moto_process=not args.moto_in_process,
    )
    with LocalSystem(settings) as system:
        from orderbridge import clients

        admin = f"{system.sandbox.url}/_sandbox/bigcommerce"
        requests.post(
            f"{admin}/config",
            json={
                "accounts": {
                    "demo123": {"rate_limit": {"quota": args.quota, "window_ms": int(args.window * 1000)}}
                }
            },
            timeout=10,
        ).raise_for_status()
        config = system.local_config()
        config["destinations"]["bc-demo"]["rate_limit"] = {
            "requests": args.quota,
            "per_seconds": args.window,
            "burst": 2,
        }
        system.upload_config(config)
        time.sleep(1.2)

        sqs = clients.client("sqs")
        refs: list[str] = []
        started = time.monotonic()
        for start in range(0, args.orders, 10):
            entries = []
            for i in range(start, min(start + 10, args.orders)):
                ext = f"LOAD-{uuid.uuid4().hex[:12]}"
                refs.append(ext)
                order = {
                    "external_order_id": ext,
                    "buyer": {"email": "load@example.com"},
                    "billing_address": {
                        "first_name": "L",
                        "last_name": "T",
                        "address1": "1 Main St",
                        "city": "Austin",
                        "zip": "78701",
                        "country": "US",
                    },
                    "lines": [{"sku": "MUG-001", "quantity": 1}],
                }
                entries.append(
                    {
                        "Id": str(i - start),
                        "MessageBody": json.dumps({"source": "load", "route": "default", "order": order}),
                    }
                )
            sqs.send_message_batch(QueueUrl=system.queue_url, Entries=entries)

        stats: dict = {}
        while time.monotonic() - started < 3600:
            stats = requests.get(f"{admin}/stats", timeout=10).json()
            attrs = sqs.get_queue_attributes(
                QueueUrl=system.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if stats["orders"] >= args.orders and all(v == "0" for v in attrs.values()):
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
        orders = requests.get(f"{admin}/orders", timeout=60).json()

    per_ref = Counter(o["request"]["external_order_id"] for o in orders)
    duplicates = sum(n - 1 for n in per_ref.values() if n > 1)
    times = sorted(datetime.fromisoformat(o["received_at"]).timestamp() for o in orders)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    limit_rate = args.quota / args.window
    gaps = [b - a for a, b in itertools.pairwise(times)]
    sustained = (len(times) - 1) / span if span else 0.0
    result = {
        "orders_sent": args.orders,
        "orders_created": len(orders),
        "duplicates": duplicates,
        "provider_429s": stats.get("rate_limited", 0),
        "provider_requests": stats.get("requests", 0),
        "limit_per_second": round(limit_rate, 3),
        "sustained_per_second": round(sustained, 3),
        "fraction_of_limit": round(sustained / limit_rate, 3),
        "workers": args.workers,
        "moto": "in process" if args.moto_in_process else "own process",
        "wall_seconds": round(elapsed, 1),
        # where the time between provider calls went: one slot is 1/limit seconds
        "gap_p50_ms": round(_percentile(gaps, 50) * 1000, 1),
        "gap_p99_ms": round(_percentile(gaps, 99) * 1000, 1),
        "gap_max_ms": round(max(gaps, default=0.0) * 1000, 1),
        "seconds_lost_in_gaps_over_2_slots": round(
            sum(g - 1 / limit_rate for g in gaps if g > 2 / limit_rate), 2
        ),
    }
    table = Table(
        title=f"throughput under {args.quota} requests / {args.window:g} s, {args.workers} dispatchers"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in result.items():
        table.add_row(k, str(v))
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "throughput.json").write_text(json.dumps(result, indent=2))
    return 0 if duplicates == 0 and len(orders) == args.orders else 1


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


if __name__ == "__main__":
    sys.exit(main())
