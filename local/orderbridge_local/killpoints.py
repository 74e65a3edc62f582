"""Kill points: the functions' process dies (SIGKILL, as Lambda kills a function) where a test says.

Only the local run's functions process (`python -m orderbridge_local.functions`, started by
`orderbridge-local up --processes` and by `tests/crashlib.py`) reads them; nothing in the core
package knows about them. The process reads `ORDERBRIDGE_LOCAL_KILL_AT`, a comma-separated list
of entries:

    [action:]point[#n]

`point` is one of

* a botocore event on the process-wide clients (`orderbridge.clients.client(service)`): e.g.
  `after-call.sqs.SendMessage`, `before-call.dynamodb.PutItem`, `after-call.dynamodb.UpdateItem`,
  `before-call.secrets-manager.GetSecretValue`, `after-call.s3.GetObject`. botocore matches
  prefixes, so `after-call.dynamodb` is any DynamoDB call. `before-call` is before the request
  is sent (after botocore's own retries are set up: once per API call); `after-call` is after
  AWS answered and applied it, before the caller sees the answer.
* `provider-sending[.<provider>[.<METHOD>]]`: the dispatcher's HTTP request to a provider (the
  sandbox URL) is about to go out;
* `provider-answered[.<provider>[.<METHOD>]]`: the provider's HTTP answer has been received,
  before anything is written (`provider-answered.bigcommerce.POST`: a BigCommerce create; the
  bare `provider-answered` also matches lookups);
* `rate-limit-wait`: the dispatcher is about to sleep for a rate-limit slot;
* `mid-batch[.<k>]`: the dispatcher handler has finished record k of a batch and more records
  remain (`mid-batch` is after any record but the last);
* `batch-done`: the dispatcher handler returned its answer, before the event source mapping
  deletes the batch's records.

`action` is `kill` (the default: `os.kill(os.getpid(), SIGKILL)`), or `refuse` for a botocore
point: the call fails with a `ClientError` instead (DynamoDB:
`ProvisionedThroughputExceededException`, others: an internal error), no process is killed.
`refuse(Code)` names the error code, e.g. `refuse(ThrottlingException):before-call.sqs.SendMessage`.

`#n` fires the entry only the n-th time its point is reached in this process (1-based); without
it, the first time; `#*` every time (useful with `refuse`). Each entry counts on its own.

    ORDERBRIDGE_LOCAL_KILL_AT=after-call.sqs.SendMessage#1
    ORDERBRIDGE_LOCAL_KILL_AT=provider-answered.bigcommerce.POST
    ORDERBRIDGE_LOCAL_KILL_AT=refuse:before-call.dynamodb.PutItem#2,mid-batch.1

Before killing, the process writes `orderbridge-local: kill point <entry> reached: SIGKILL` to
stderr (`refuse`: `... refusing <operation>`).
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from botocore.exceptions import ClientError

KILL_AT_ENV = "ORDERBRIDGE_LOCAL_KILL_AT"
BOTOCORE_EVENTS = ("before-call", "after-call")  # the botocore points an entry may name
LOCAL_POINTS = ("provider-sending", "provider-answered", "rate-limit-wait", "mid-batch", "batch-done")
SERVICES = ("sqs", "dynamodb", "s3", "secretsmanager")  # the functions' clients
DEFAULT_REFUSAL = {
    "dynamodb": ("ProvisionedThroughputExceededException", 400),
    "sqs": ("InternalError", 500),
    "s3": ("InternalError", 500),
    "secrets-manager": ("InternalServiceError", 500),
}
_ENTRY = re.compile(
    r"^(?:(?P<action>kill|refuse)(?:\((?P<code>[A-Za-z0-9_.]+)\))?:)?(?P<point>[A-Za-z0-9_.*-]+?)"
    r"(?:#(?P<nth>\d+|\*))?$"
)


def _default_kill(entry: str) -> None:
    sys.stderr.write(f"orderbridge-local: kill point {entry} reached: SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Entry:
    """One parsed entry of `ORDERBRIDGE_LOCAL_KILL_AT`."""

    text: str
    action: str  # "kill" | "refuse"
    point: str
    nth: int | None  # None: every time ("#*"); otherwise fire on the nth hit only
    code: str | None = None
    hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def is_botocore(self) -> bool:
        return self.point.split(".", 1)[0] in BOTOCORE_EVENTS

    def matches(self, name: str) -> bool:
        """A local point's name matches the entry's point or is below it (`a.b` is below `a`)."""
        return name == self.point or name.startswith(self.point + ".")

    def hit(self) -> bool:
        """Count one hit; True if the entry fires on it."""
        with self._lock:
            self.hits += 1
            return self.nth is None or self.hits == self.nth


def parse(spec: str | None) -> list[Entry]:
    """Parse `ORDERBRIDGE_LOCAL_KILL_AT`'s value; ValueError names a malformed entry."""
    entries: list[Entry] = []
    for raw in (spec or "").split(","):
        text = raw.strip()
        if not text:
            continue
        m = _ENTRY.match(text)
        if m is None:
            raise ValueError(f"{KILL_AT_ENV}: cannot parse {text!r} (expected [action:]point[#n])")
        nth = m["nth"]
        entry = Entry(
            text=text,
            action=m["action"] or "kill",
            point=m["point"],
            nth=None if nth == "*" else int(nth or 1),
            code=m["code"],
        )
        if entry.nth == 0:
            raise ValueError(f"{KILL_AT_ENV}: {text!r}: #n counts from 1")
        if not entry.is_botocore and entry.point.split(".", 1)[0] not in LOCAL_POINTS:
            known = ", ".join((*(f"{e}.<service>.<Operation>" for e in BOTOCORE_EVENTS), *LOCAL_POINTS))
            raise ValueError(f"{KILL_AT_ENV}: unknown point in {text!r}; known: {known}")
        if entry.code and entry.action != "refuse":
            raise ValueError(f"{KILL_AT_ENV}: {text!r}: only refuse takes an error code")
        if entry.action == "refuse" and not entry.is_botocore:
            raise ValueError(f"{KILL_AT_ENV}: {text!r}: refuse needs a before-call/after-call point")
        entries.append(entry)
    return entries


class KillPoints:
    """The parsed entries and the hooks that fire them. `kill` is replaceable for tests."""

    def __init__(self, entries: Iterable[Entry], *, kill: Callable[[str], None] = _default_kill) -> None:
        self.entries = list(entries)
        self._kill = kill

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> KillPoints:
        return cls(parse((environ if environ is not None else os.environ).get(KILL_AT_ENV)))

    def __bool__(self) -> bool:
        return bool(self.entries)

    # --- firing --------------------------------------------------------------------------------

    def reach(self, name: str) -> None:
        """The process reached local point `name` (e.g. `provider-answered.bigcommerce.POST`)."""
        for entry in self.entries:
            if not entry.is_botocore and entry.matches(name) and entry.hit():
                self._kill(entry.text)

    def _botocore_handler(self, entry: Entry) -> Callable[..., None]:
        def handler(event_name: str = "", **kwargs: Any) -> None:
            if not entry.hit():
                return
            if entry.action == "kill":
                self._kill(entry.text)
                return
            model = kwargs.get("model")
            operation = getattr(model, "name", None) or event_name.rsplit(".", 1)[-1]
            service = event_name.split(".")[1] if event_name.count(".") >= 1 else ""
            code, status = DEFAULT_REFUSAL.get(service, ("InternalFailure", 500))
            if entry.code:
                code = entry.code
                status = 400 if re.search(r"Throttl|Throughput|LimitExceeded", code) else 500
            sys.stderr.write(f"orderbridge-local: kill point {entry.text} reached: refusing {operation}\n")
            sys.stderr.flush()
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": f"refused by orderbridge-local ({entry.text})"},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                },
                operation,
            )

        return handler

    # --- installing ----------------------------------------------------------------------------

    def install_botocore(self, client_for: Callable[[str], Any]) -> None:
        """Register the botocore entries on each of the functions' clients (`client_for(service)`)."""
        for entry in self.entries:
            if entry.is_botocore:
                handler = self._botocore_handler(entry)
                for service in SERVICES:
                    client_for(service).meta.events.register(entry.point, handler)

    def install_http(self, provider_base_url: str) -> None:
        """`provider-sending` / `provider-answered` around requests' HTTP adapter, for the provider URL."""
        if not any(
            e.point.split(".", 1)[0] in ("provider-sending", "provider-answered") for e in self.entries
        ):
            return
        from requests.adapters import HTTPAdapter

        base = provider_base_url.rstrip("/") + "/"
        original = HTTPAdapter.send
        points = self

        def send(adapter: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
            url = str(request.url or "")
            if not url.startswith(base) or url.startswith(base + "_sandbox/"):
                return original(adapter, request, *args, **kwargs)
            provider = url[len(base) :].split("/", 1)[0].split("?", 1)[0]
            suffix = f"{provider}.{request.method}"
            points.reach(f"provider-sending.{suffix}")
            response = original(adapter, request, *args, **kwargs)
            points.reach(f"provider-answered.{suffix}")
            return response

        HTTPAdapter.send = send  # type: ignore[method-assign]

    def install_rate_limit_wait(self, dispatcher_module: ModuleType) -> None:
        """`rate-limit-wait`: the dispatcher module's own `time` gets a `sleep` that reaches the point.

        Only that module's name `time` is replaced (by a stand-in that delegates everything else to
        the real module), so no other code's sleeps are affected.
        """
        if not any(e.point == "rate-limit-wait" for e in self.entries):
            return
        real = getattr(dispatcher_module, "time", None)
        if real is None:
            raise RuntimeError("rate-limit-wait: the dispatcher module no longer imports `time`")
        points = self

        class _Time:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            @staticmethod
            def sleep(seconds: float) -> None:
                if seconds > 0:
                    points.reach("rate-limit-wait")
                real.sleep(seconds)

        dispatcher_module.time = _Time()  # type: ignore[attr-defined]

    def instrument_dispatcher(self, function_module: ModuleType) -> Callable[..., Any]:
        """`mid-batch` / `batch-done` around `functions/dispatcher/app.py`; returns its handler to invoke."""
        handler: Callable[..., Any] = function_module.lambda_handler
        if not any(e.point.split(".", 1)[0] in ("mid-batch", "batch-done") for e in self.entries):
            return handler
        record_handler = function_module.record_handler
        batch = threading.local()
        points = self

        # the same signature: Powertools passes `lambda_context` only to handlers that take it
        @functools.wraps(record_handler)
        def counted_record_handler(*args: Any, **kwargs: Any) -> Any:
            try:
                return record_handler(*args, **kwargs)
            finally:
                batch.done = getattr(batch, "done", 0) + 1
                if batch.done < getattr(batch, "size", 0):
                    points.reach(f"mid-batch.{batch.done}")

        def counted_handler(event: dict[str, Any], context: Any) -> Any:
            batch.size, batch.done = len(event.get("Records") or []), 0
            result = handler(event, context)
            points.reach("batch-done")
            return result

        # app.py's lambda_handler looks `record_handler` up at call time, as a module global
        function_module.record_handler = counted_record_handler  # type: ignore[attr-defined]
        return counted_handler
