"""DynamoDB's atomic conditional writes, for moto.

DynamoDB applies each write to an item atomically: a conditional write is checked and applied
with no other write to that item in between, and the old or new values it returns are the ones it
replaced or wrote. moto's server answers requests on many threads and, in plain Python, checks a
condition and then applies the update (so two concurrent conditional writes can both pass), and
reads the item it returns as `UPDATED_OLD` / `ALL_OLD` before the write (so two writers can be
told the same old value). Everything orderbridge promises about exactly-once rests on that
atomicity (the outcome table's claim, the rate limiter's slots), so the local run restores it:
every DynamoDB write request, from parsing it to answering it, and every backend read, runs under
one lock. Without this, five dispatchers claiming the same delivery at once could, in the local
run only, all win and send the order five times.

`python -m orderbridge_local.moto_atomic -H 127.0.0.1 -p PORT` is moto's server with the lock.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

_LOCK = threading.RLock()
READS = ("get_item", "query", "scan")  # backend reads: never see a write half applied
WRITES = (  # whole requests: their answers read the item apart from the write
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)


def _atomic(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return operation(*args, **kwargs)

    run.__orderbridge_atomic__ = True  # type: ignore[attr-defined]
    return run


def install() -> None:
    """Make moto's DynamoDB operations atomic in this process (idempotent)."""
    for cls, names in ((DynamoDBBackend, READS), (DynamoHandler, WRITES)):
        for name in names:
            operation = getattr(cls, name)
            if not getattr(operation, "__orderbridge_atomic__", False):
                setattr(cls, name, _atomic(operation))


def main(argv: list[str] | None = None) -> None:
    install()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
