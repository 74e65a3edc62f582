"""Fixtures: the whole local system (moto's server, sandboxes, real handlers) once per worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from orderbridge_local.system import LocalSystem, Settings
from tests.contract import bigcommerce_order_post_errors


class Harness:
    """The local system plus the verbs tests need: post, drain the queue, read the sandbox."""

    def __init__(self, system: LocalSystem) -> None:
        self.system = system
        assert system.api is not None
        self.api = system.api.url
        self.sandbox = system.sandbox.url

    # intake
    def post(self, path: str, body: bytes | str, headers: dict[str, str] | None = None) -> requests.Response:
        data = body.encode() if isinstance(body, str) else body
        return requests.post(self.api + path, data=data, headers=headers or {}, timeout=30)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.api + path, timeout=30, **kw)

    # queue
    def send(self, body: str) -> None:
        from orderbridge import clients

        clients.client("sqs").send_message(QueueUrl=self.system.queue_url, MessageBody=body)

    def drain(self, until: Callable[[], bool] | None = None, timeout: float = 30.0) -> None:
        """Feed the dispatcher batches until `until()` holds (default: the queue is empty)."""
        from orderbridge import clients

        assert self.system.poller is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.system.poller.poll_once(wait_seconds=0)
            if until is not None:
                if until():
                    return
            elif got == 0:
                attrs = clients.client("sqs").get_queue_attributes(
                    QueueUrl=self.system.queue_url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed",
                    ],
                )["Attributes"]
                if all(v == "0" for v in attrs.values()):
                    return
            if got == 0:
                time.sleep(0.2)
        raise AssertionError("the queue did not drain in time")

    def outcomes(self, tracking_id: str) -> list[Any]:
        from orderbridge import wiring

        return wiring.outcome_store().get(tracking_id)

    def final(self, tracking_id: str) -> Callable[[], bool]:
        def check() -> bool:
            found = self.outcomes(tracking_id)
            return bool(found) and all(o.status.is_final for o in found)

        return check

    def take_dead_letters(self) -> list[dict[str, Any]]:
        """Receive and delete everything on the dead-letter queue."""
        from orderbridge import clients

        sqs = clients.client("sqs")
        taken: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=self.system.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return taken
            for m in batch:
                sqs.delete_message(QueueUrl=self.system.dlq_url, ReceiptHandle=m["ReceiptHandle"])
            taken += batch

    # sandbox
    def sandbox_orders(self, provider: str = "bigcommerce") -> list[dict[str, Any]]:
        r = requests.get(f"{self.sandbox}/_sandbox/{provider}/orders", timeout=10)
        r.raise_for_status()
        return r.json()

    def orders_with_reference(self, reference: str) -> list[dict[str, Any]]:
        return [o for o in self.sandbox_orders() if o["order"].get("external_order_id") == reference]

    def fault(self, provider: str, mode: str, count: int = 1, **extra: Any) -> None:
        r = requests.post(
            f"{self.sandbox}/_sandbox/{provider}/faults",
            json={"mode": mode, "count": count, **extra},
            timeout=10,
        )
        r.raise_for_status()

    def clear_faults(self, provider: str = "bigcommerce") -> None:
        requests.delete(f"{self.sandbox}/_sandbox/{provider}/faults", timeout=10)


@pytest.fixture(scope="session")
def harness() -> Iterator[Harness]:
    settings = Settings(
        start_poller=False,
        retry_base_delay=1.0,
        retry_max_delay=2.0,
        max_receive_count=3,
        visibility_timeout=5,
        provider_timeout=2.0,
        rate_limit_max_wait=2.0,
        lease_seconds=8,  # must outlast provider timeout + the rate-limit wait (the dispatcher checks)
    )
    with LocalSystem(settings) as system:
        h = Harness(system)
        yield h
        # Every order the adapter sent during the session must satisfy BigCommerce's contract.
        problems = {
            o["order"].get("external_order_id"): bigcommerce_order_post_errors(o["request"])
            for o in h.sandbox_orders()
        }
        assert not {k: v for k, v in problems.items() if v}


@pytest.fixture(autouse=True)
def _no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "harness" in request.fixturenames:
        request.getfixturevalue("harness").clear_faults()
