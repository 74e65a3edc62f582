"""A provider that finishes late, at the deployed timings: one order per provider per delay.

The provider answers after the client's timeout (10 s, as deployed) and creates the order 15, 20,
30 and 60 s after the request (the sandbox's `timeout` fault). The dispatcher must find the order
by lookups inside the provider's reconcile window (300 s by default) and never send it again;
Komerza, with no lookup, must park it as NEEDS_REVIEW. Prints a table (provider orders per order,
final status, attempts, seconds until final) and writes bench/results/late_provider.json. Each
delay is one round with every provider at once (about 1-2 minutes a round).

    .venv/bin/python bench/late_provider.py [--delays 15 20 30 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import requests
from rich.console import Console
from rich.table import Table

from orderbridge_local.system import LocalSystem, Settings

RESULTS = Path(__file__).resolve().parent / "results"
ROUTES = {"bigcommerce": "default", "threekit": "threekit", "lana": "lana", "komerza": "komerza"}


def event(route: str) -> tuple[str, str]:
    ext = f"LATE-{uuid.uuid4().hex[:10]}"
    order = {
        "external_order_id": ext,
        "buyer": {"email": "late@example.com"},
        "billing_address": {
            "first_name": "L",
            "last_name": "P",
            "address1": "1 Main St",
            "city": "Austin",
            "province": "TX",
            "zip": "78701",
            "country": "US",
        },
        "shipping_address": {
            "first_name": "L",
            "last_name": "P",
            "address1": "1 Main St",
            "city": "Austin",
            "province": "TX",
            "zip": "78701",
            "country": "US",
        },
        "lines": [{"sku": "MUG-001", "quantity": 1}],
    }
    return json.dumps({"source": "bench", "route": route, "order": order}), ext


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--delays", type=float, nargs="+", default=[15, 20, 30, 60])
    parser.add_argument("--timeout", type=float, default=10.0, help="the client's timeout (deployed: 10 s)")
    args = parser.parse_args(argv)
    console = Console(width=140)
    rows = []
    settings = Settings(
        workers=4,
        provider_timeout=args.timeout,
        lease_seconds=int(2 * args.timeout + 30),
        visibility_timeout=int(2 * args.timeout + 40),
        moto_process=True,
    )
    with LocalSystem(settings) as system:
        from orderbridge import clients, wiring
        from orderbridge.identity import OrderIdentity

        ids = wiring.tracking_ids(wiring.credential_store())
        store = wiring.outcome_store()
        for delay in args.delays:
            sent = {}
            started = time.monotonic()
            for provider, route in ROUTES.items():
                requests.post(
                    f"{system.sandbox.url}/_sandbox/{provider}/faults",
                    json={"mode": "timeout", "count": 1, "seconds": delay},
                    timeout=10,
                ).raise_for_status()
                body, ext = event(route)
                clients.client("sqs").send_message(QueueUrl=system.queue_url, MessageBody=body)
                sent[provider] = ids.tracking_id(
                    OrderIdentity.of(shop="bench", source="bench", external_order_id=ext)
                )
            finished: dict[str, float] = {}
            deadline = time.monotonic() + 600
            while len(finished) < len(sent) and time.monotonic() < deadline:
                for provider, tracking_id in sent.items():
                    outcomes = store.get(tracking_id)
                    if provider not in finished and outcomes and all(o.status.is_final for o in outcomes):
                        finished[provider] = time.monotonic() - started
                time.sleep(1)
            for provider, tracking_id in sent.items():
                held = requests.get(f"{system.sandbox.url}/_sandbox/{provider}/orders", timeout=10).json()
                count = sum(tracking_id in json.dumps(o) for o in held)
                [outcome] = store.get(tracking_id) or [None]
                rows.append(
                    {
                        "provider": provider,
                        "delay_s": delay,
                        "provider_orders": count,
                        "status": outcome.status.value if outcome else "none",
                        "attempts": outcome.attempts if outcome else 0,
                        "seconds_to_final": round(finished.get(provider, float("nan")), 1),
                    }
                )
            console.print(f"delay {delay:g} s: done")
    columns = ("provider", "delay_s", "provider_orders", "status", "attempts", "seconds_to_final")
    table = Table(title=f"provider creates the order late (client timeout {args.timeout:g} s)")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "late_provider.json").write_text(json.dumps(rows, indent=2))
    doubled = [r for r in rows if r["provider_orders"] > 1]
    return 1 if doubled else 0


if __name__ == "__main__":
    sys.exit(main())
