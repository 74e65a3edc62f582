"""Import throughput: rows per second for parse-and-enqueue.

Three measurements on one generated CSV (orders of 1-3 lines, the `erp-files` mapping):

1. parse + map + validate: bytes -> rows -> orders (`CanonicalOrder`), no I/O at all;
2. parse-and-enqueue: a whole import run (`ImportService`) on the local system: the file streamed
   from moto's S3, the lease, known-order checks (ledger + outcome table, moto's DynamoDB), queue
   batches, the ledger and the checkpoints. The queue is an in-memory stand-in for SendMessageBatch,
   because moto's SQS counts every message it holds on each send (it slows down as it fills);
3. the same into moto's real SQS, for a smaller file (`--moto-queue-rows`), to show that cost.

    .venv/bin/python bench/import_rows.py --rows 20000
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import random
import sys
import time
import uuid
from typing import Any

from rich.console import Console
from rich.table import Table

HEADER = [
    "order_number",
    "placed_at",
    "currency",
    "email",
    "first_name",
    "last_name",
    "address1",
    "city",
    "zip",
    "country",
    "sku",
    "qty",
    "unit_price",
]


def make_csv(rows: int, prefix: str, seed: int = 7) -> tuple[bytes, int]:
    rnd = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    written, orders = 0, 0
    while written < rows:
        number = f"{prefix}-{orders:07d}"
        for _ in range(min(rnd.choice([1, 2, 2, 3]), rows - written)):
            writer.writerow(
                [
                    number,
                    "2026-01-05T09:00:00Z",
                    "USD",
                    f"b{orders}@example.com",
                    "Bo",
                    "Ker",
                    "1 Main St",
                    "Springfield",
                    "12345",
                    "US",
                    rnd.choice(["TEE-BLUE-M", "MUG-001"]),
                    str(rnd.randint(1, 5)),
                    "9.99",
                ]
            )
            written += 1
        orders += 1
    return out.getvalue().encode(), orders


class MemoryQueue:
    """SendMessageBatch, accepted and counted."""

    def __init__(self) -> None:
        self.messages = 0

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.messages += len(Entries)
        return {"Successful": [{"Id": e["Id"], "MessageId": e["Id"]} for e in Entries], "Failed": []}


def parse_only(body: bytes, mapping: dict[str, Any]) -> tuple[int, int, float]:
    from orderbridge.imports.config import FieldMapping
    from orderbridge.imports.mapping import OrderBuilder
    from orderbridge.imports.readers import Position, csv_rows, group_units

    builder = OrderBuilder(FieldMapping.model_validate(mapping))
    started = time.perf_counter()
    rows = orders = 0
    rows_iter = csv_rows([body], start=Position(), header=None, order_id=builder.order_id)
    for unit in group_units(rows_iter):
        rows += unit.row_count
        if unit.rows and builder.build(unit.rows).order is not None:
            orders += 1
    return rows, orders, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000, help="rows in the generated file")
    parser.add_argument(
        "--chunk-orders", type=int, default=100, help="orders per commit (IMPORT_CHUNK_ORDERS)"
    )
    parser.add_argument(
        "--moto-queue-rows", type=int, default=1_000, help="rows for the run into moto's SQS (0: skip)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    console = Console(width=120)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from orderbridge_local.system import LocalSystem, Settings

    results: list[dict[str, Any]] = []
    with LocalSystem(Settings(start_poller=False)) as system:
        from orderbridge import clients, wiring
        from orderbridge.imports.service import ImportSettings

        config = system.local_config()
        mapping = config["imports"]["erp-files"]["mapping"]

        body, orders = make_csv(args.rows, "P")
        rows, built, seconds = parse_only(body, mapping)
        assert rows == args.rows and built == orders
        results.append(
            {"stage": "parse + map + validate (no I/O)", "rows": rows, "orders": built, "seconds": seconds}
        )

        def run(rows: int, *, memory_queue: bool) -> dict[str, Any]:
            name = f"bench-{uuid.uuid4().hex[:6]}"
            config["imports"][name] = dict(config["imports"]["erp-files"], prefix=f"bench/{name}/")
            system.upload_config(config)
            body, orders = make_csv(rows, name.upper())
            clients.client("s3").put_object(
                Bucket=system.import_bucket, Key=f"bench/{name}/orders.csv", Body=body
            )
            service = wiring.import_service()
            service.settings = ImportSettings(chunk_orders=args.chunk_orders)
            queue = MemoryQueue()
            if memory_queue:
                service.sink.sqs = queue
            started = time.perf_counter()
            summary = service.run_source(name)
            seconds = time.perf_counter() - started
            assert summary.rows_imported == rows and summary.orders_imported == orders, summary.brief()
            if memory_queue:
                assert queue.messages == orders
            else:
                clients.client("sqs").purge_queue(QueueUrl=system.queue_url)
            where = "in-memory queue" if memory_queue else "moto's SQS"
            return {
                "stage": f"parse-and-enqueue, local system, {where}",
                "rows": rows,
                "orders": orders,
                "seconds": seconds,
            }

        results.append(run(args.rows, memory_queue=True))
        if args.moto_queue_rows:
            results.append(run(args.moto_queue_rows, memory_queue=False))

    table = Table(title=f"import throughput ({args.chunk_orders} orders per commit)")
    for column in ("stage", "rows", "orders", "seconds", "rows/s", "orders/s"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for r in results:
        r["rows_per_second"] = round(r["rows"] / r["seconds"])
        r["orders_per_second"] = round(r["orders"] / r["seconds"])
        table.add_row(
            r["stage"],
            str(r["rows"]),
            str(r["orders"]),
            f"{r['seconds']:.2f}",
            str(r["rows_per_second"]),
            str(r["orders_per_second"]),
        )
    console.print(table)
    console.print(
        "moto runs in this process (one interpreter, one GIL): the local-system figures include its "
        "DynamoDB and S3 work. On AWS the queue and table calls are network round trips instead."
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "chunk_orders": args.chunk_orders, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
