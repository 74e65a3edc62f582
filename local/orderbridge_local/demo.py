"""The demo: every sample in `events/` through the running system, a table of outcomes.

A sample is an event file a trigger would deliver (API Gateway or SQS), plus a
`x-orderbridge-demo` block saying what should happen. API samples are sent over HTTP to the
local API (webhooks re-signed with the local secret and a fresh timestamp); SQS samples are put
on the order queue. Exit status 1 if any outcome differs from what its sample expects.

The functions' log lines (JSON) go to a file (`log_lines_to`, `orderbridge-local demo` uses
`.orderbridge-local/demo.log`) so the progress lines and the table read uninterrupted;
`--verbose` keeps them on the terminal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import requests
from rich.console import Console
from rich.table import Table
from standardwebhooks.webhooks import Webhook

from orderbridge.intake.signatures import sign_shopify
from orderbridge.models.event import OrderEvent
from orderbridge_local.system import LocalSystem

DEMO_KEY = "x-orderbridge-demo"
SIGNATURE_HEADERS = {"x-shopify-hmac-sha256", "webhook-signature", "webhook-timestamp"}


@dataclass
class Row:
    sample: str
    way_in: str
    expected: str
    observed: str
    detail: str
    ok: bool


def _std_handlers(streams: tuple[object, ...]) -> list[logging.StreamHandler[Any]]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return [
        h
        for logger in loggers
        if isinstance(logger, logging.Logger)
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and h.stream in streams
    ]


@contextlib.contextmanager
def log_lines_to(path: Path) -> Iterator[IO[str]]:
    """Send everything written to stdout or stderr, and every log handler writing there, to `path`
    (truncated) while the block runs. Handlers created inside the block (the functions' loggers,
    made when their modules load) write to `path` too. A console made beforehand with an explicit
    `file=sys.stdout` still reaches the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = sys.stdout, sys.stderr
    std = (*saved, sys.__stdout__, sys.__stderr__)
    with path.open("w", encoding="utf-8") as log:
        moved = [(h, h.stream) for h in _std_handlers(std)]
        for handler, _ in moved:
            handler.setStream(log)
        sys.stdout = sys.stderr = log
        try:
            yield log
        finally:
            sys.stdout, sys.stderr = saved
            for handler, stream in moved:
                handler.setStream(stream)
            for handler in _std_handlers((log,)):  # made inside the block: to the terminal from now on
                handler.setStream(saved[0])


def _first_secret(system: LocalSystem, secret_id: str) -> str:
    value = system.secrets[secret_id]
    return str(value["secrets"][0])


def _sign(system: LocalSystem, how: dict[str, str], headers: dict[str, str], body: str) -> dict[str, str]:
    headers = {k: v for k, v in headers.items() if k.lower() not in SIGNATURE_HEADERS}
    secret = _first_secret(system, how["secret_id"])
    if how["scheme"] == "shopify":
        headers["X-Shopify-Hmac-Sha256"] = sign_shopify(body.encode(), secret)
    else:
        msg_id = headers.get("webhook-id", "msg_demo")
        now = datetime.now(UTC)
        headers["webhook-timestamp"] = str(int(now.timestamp()))
        headers["webhook-signature"] = Webhook(secret).sign(msg_id, now, body)
    return headers


def _expected(expect: dict[str, Any]) -> str:
    parts = [str(expect.get("http_status", ""))] if "http_status" in expect else []
    if "outcome" in expect:
        parts.append(expect["outcome"])
    if "error_code" in expect:
        parts.append(expect["error_code"])
    return " ".join(parts)


def _observe_outcome(
    system: LocalSystem, tracking_id: str, expect: dict[str, Any], timeout: float
) -> tuple[str, str, bool]:
    outcomes = system.wait_for(tracking_id, timeout=timeout)
    if not outcomes:
        return "no outcome", tracking_id, False
    statuses = sorted({o.status.value for o in outcomes})
    codes = sorted({o.error_code for o in outcomes if o.error_code})
    ok = statuses == [expect.get("outcome")] and (
        "error_code" not in expect or codes == [expect["error_code"]]
    )
    detail = ", ".join(
        f"{o.destination}: {o.provider_order_id or o.error_code or ''}".strip() for o in outcomes
    )
    return " ".join(statuses + codes), f"{tracking_id} {detail}", ok


def run_api_sample(system: LocalSystem, name: str, sample: dict[str, Any], timeout: float) -> Row:
    demo = sample[DEMO_KEY]
    expect = demo["expect"]
    body = sample.get("body") or ""
    headers = dict(sample.get("headers") or {})
    if "sign" in demo:
        headers = _sign(system, demo["sign"], headers, body)
    assert system.api is not None
    response = requests.request(
        sample["httpMethod"],
        system.api.url + sample["path"],
        headers=headers,
        data=body.encode(),
        timeout=30,
    )
    observed = str(response.status_code)
    ok = response.status_code == expect.get("http_status", 202)
    detail = ""
    payload = (
        response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    )
    if response.status_code >= 400:
        code = (payload.get("error") or {}).get("code", "")
        observed += f" {code}"
        ok = ok and ("error_code" not in expect or code == expect["error_code"])
        detail = (payload.get("error") or {}).get("message", "")
    elif "tracking_id" in payload and "outcome" in expect:
        outcome, detail, outcome_ok = _observe_outcome(system, payload["tracking_id"], expect, timeout)
        observed += f" {outcome}"
        ok = ok and outcome_ok
    return Row(name, f"{sample['httpMethod']} {sample['path']}", _expected(expect), observed, detail, ok)


def run_sqs_sample(system: LocalSystem, name: str, sample: dict[str, Any], timeout: float) -> list[Row]:
    from orderbridge import clients, wiring

    expect = sample[DEMO_KEY]["expect"]
    ids = wiring.tracking_ids(wiring.credential_store())
    rows = []
    for record in sample["Records"]:
        event = OrderEvent.model_validate_json(record["body"])
        tracking_id = event.resolved_tracking_id(ids)
        clients.client("sqs").send_message(QueueUrl=system.queue_url, MessageBody=record["body"])
        outcome, detail, ok = _observe_outcome(system, tracking_id, expect, timeout)
        rows.append(Row(name, "SQS order queue", _expected(expect), outcome, detail, ok))
    return rows


def run_demo(
    system: LocalSystem,
    *,
    events_dir: Path | None = None,
    timeout: float = 60.0,
    console: Console | None = None,
) -> list[Row]:
    console = console or Console()
    rows: list[Row] = []
    for path in sorted((events_dir or system.root / "events").glob("*.json")):
        sample = json.loads(path.read_text())
        if DEMO_KEY not in sample:
            continue
        started = time.monotonic()
        if "httpMethod" in sample:
            rows.append(run_api_sample(system, path.name, sample, timeout))
        elif "Records" in sample:
            rows += run_sqs_sample(system, path.name, sample, timeout)
        console.print(f"  {path.name:<48} {time.monotonic() - started:5.1f} s", highlight=False)
    table = Table(title="orderbridge demo: every sample in events/")
    for column in ("sample", "way in", "expected", "observed", "detail", "ok"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.sample, r.way_in, r.expected, r.observed, r.detail, "yes" if r.ok else "NO")
    console.print(table)
    failed = [r for r in rows if not r.ok]
    console.print(f"{len(rows) - len(failed)} of {len(rows)} samples behaved as expected")
    return rows
