"""Crash tests' harness: AWS (moto) and the providers (sandboxes) live on while the functions die.

    with CrashableRun() as run:
        run.start_functions(kill_at="after-call.sqs.SendMessage#1")
        ...                       # drive the intake at run.api_url, or put events on run.queue_url
        run.wait_dead()           # the functions process died at its kill point (SIGKILL)
        run.restart()             # a fresh functions process, same moto and sandboxes
        run.wait_drained()

Built on `orderbridge_local.processes.ProcessRun` (kill point syntax: `orderbridge_local.killpoints`).
The functions get the fast settings `tests/conftest.py` gives the in-process harness. Nothing
here touches this process's `os.environ` or `orderbridge.clients`, so it can share a pytest
session with the `harness` fixture. Every child process is killed on exit, and dies with this
process anyway.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

import requests

from orderbridge_local.processes import ProcessRun
from orderbridge_local.system import Settings

FAST_SETTINGS: dict[str, Any] = {
    "retry_base_delay": 1.0,
    "retry_max_delay": 2.0,
    "max_receive_count": 3,
    "visibility_timeout": 5,
    "provider_timeout": 2.0,
    "rate_limit_max_wait": 2.0,
    "lease_seconds": 8,  # must outlast provider timeout + the rate-limit wait (the dispatcher checks)
}
QUEUE_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


class CrashableRun:
    """moto + sandboxes + resources, once; a functions process to start, kill and restart."""

    def __init__(self, *, workers: int = 1, settings: Settings | None = None) -> None:
        self.settings = settings or Settings(workers=workers, **FAST_SETTINGS)
        self._run = ProcessRun(self.settings)
        self._run.functions_log = self._run.workdir / "functions.log"
        self.log_path = self._run.functions_log

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> CrashableRun:
        self._run.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            sys.stderr.write(f"--- functions log (tail) ---\n{self.log()[-4000:]}\n")
        self.stop()

    def stop(self) -> None:
        """Kill the functions process, stop the sandboxes and moto (never leaves a child behind)."""
        with contextlib.suppress(Exception):
            self._run.kill_functions()
        self._run.stop()

    # --- the functions process -------------------------------------------------------------------

    def start_functions(self, kill_at: str | None = None, env: dict[str, str] | None = None) -> int:
        """Start a functions process (`ORDERBRIDGE_LOCAL_KILL_AT=kill_at`); its pid, once it serves."""
        return self._run.start_functions(kill_at=kill_at, env=env).pid

    def restart(self, kill_at: str | None = None, env: dict[str, str] | None = None) -> int:
        """SIGKILL the functions process if it still runs, then start a fresh one; its pid."""
        self.kill()
        return self.start_functions(kill_at=kill_at, env=env)

    def kill(self) -> None:
        """SIGKILL the functions process now (no-op if it is not running)."""
        self._run.kill_functions()

    def wait_dead(self, timeout: float = 15.0) -> int:
        """Wait for the functions process to die; its exit code (-9: SIGKILL). AssertionError if alive."""
        code = self._run.wait_functions_exit(timeout)
        if code is None:
            raise AssertionError(f"the functions process is still alive after {timeout:g} s")
        return code

    @property
    def alive(self) -> bool:
        return self._run.functions_alive

    @property
    def pid(self) -> int | None:
        return self._run.functions.pid if self._run.functions is not None else None

    def log(self) -> str:
        """Everything the functions processes wrote (stdout and stderr, all of them, appended)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- where things are ------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self._run.api_url

    @property
    def sandbox_url(self) -> str:
        return self._run.sandbox_url

    @property
    def moto_url(self) -> str:
        return self._run.moto_url

    @property
    def queue_url(self) -> str:
        return self._run.queue_url

    @property
    def dlq_url(self) -> str:
        return self._run.dlq_url

    @property
    def tables(self) -> dict[str, str]:
        """Logical id (template.yaml) -> table name, e.g. `tables["OutcomeTable"]`."""
        return self._run.tables

    @property
    def outcome_table(self) -> str:
        return self.tables["OutcomeTable"]

    def client(self, service: str) -> Any:
        """A boto3 client on moto's server (this process's own): dynamodb, sqs, s3, secretsmanager."""
        return self._run.client(service)

    def upload_config(self, document: dict[str, Any] | None = None) -> None:
        """Replace the configuration document the functions read (cached by them for 1 s)."""
        self._run.upload_config(document)

    # --- intake ----------------------------------------------------------------------------------

    def post(
        self, path: str, body: bytes | str, headers: dict[str, str] | None = None, timeout: float = 15.0
    ) -> requests.Response:
        data = body.encode() if isinstance(body, str) else body
        return requests.post(self.api_url + path, data=data, headers=headers or {}, timeout=timeout)

    def send(self, body: str) -> str:
        """Put a message on the order queue (as other systems do); its message id."""
        return str(self.client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"])

    # --- queue -----------------------------------------------------------------------------------

    def queue_counts(self, queue_url: str | None = None) -> dict[str, int]:
        """Visible, in flight (not visible) and delayed messages on a queue (default: the order queue)."""
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url or self.queue_url, AttributeNames=list(QUEUE_COUNTS)
        )["Attributes"]
        return {name: int(attrs.get(name, "0")) for name in QUEUE_COUNTS}

    def wait_drained(self, timeout: float = 30.0, settle: float = 0.5) -> None:
        """Wait until the order queue has nothing visible, in flight or delayed, for `settle` seconds."""
        deadline = time.monotonic() + timeout
        empty_since: float | None = None
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = self.queue_counts()
            if any(counts.values()):
                empty_since = None
            elif empty_since is None:
                empty_since = time.monotonic()
            elif time.monotonic() - empty_since >= settle:
                return
            time.sleep(0.1)
        raise AssertionError(f"the order queue did not drain within {timeout:g} s: {counts}")

    def clear_queue(self, queue_url: str | None = None) -> None:
        """Delete every visible message (best effort; SQS's PurgeQueue may run once a minute only)."""
        sqs, url = self.client("sqs"), queue_url or self.queue_url
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )

    # --- outcomes --------------------------------------------------------------------------------

    def _outcome_store(self) -> Any:
        from orderbridge.outcomes import OutcomeStore

        return OutcomeStore(table_name=self.outcome_table, dynamodb_client=self.client("dynamodb"))

    def outcomes(self, tracking_id: str) -> list[Any]:
        return list(self._outcome_store().get(tracking_id))

    def outcomes_by_source_ref(self, source: str, external_order_id: str) -> list[Any]:
        return list(self._outcome_store().find_by_source_ref(source, external_order_id))

    def wait_for(self, check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
        """Poll `check()` until it returns something truthy; that value. AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what}: not reached within {timeout:g} s")
            time.sleep(0.1)

    def wait_final(self, tracking_id: str, timeout: float = 30.0) -> list[Any]:
        """The order's outcomes once every destination is final."""

        def check() -> list[Any]:
            found = self.outcomes(tracking_id)
            return found if found and all(o.status.is_final for o in found) else []

        return self.wait_for(check, timeout, f"final outcome of {tracking_id}")

    # --- sandboxes -------------------------------------------------------------------------------

    def sandbox_orders(self, provider: str = "bigcommerce") -> list[dict[str, Any]]:
        r = requests.get(f"{self.sandbox_url}/_sandbox/{provider}/orders", timeout=10)
        r.raise_for_status()
        return list(r.json())

    def orders_with_reference(self, reference: str) -> list[dict[str, Any]]:
        """BigCommerce sandbox orders carrying `reference` (the tracking id) as `external_order_id`."""
        return [o for o in self.sandbox_orders() if o["order"].get("external_order_id") == reference]
