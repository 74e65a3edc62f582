"""What the Lambda runtime gives a handler, reproduced for the local run: a context object, and
the invocation's own log keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class LocalContext:
    """Duck-types `LambdaContext`: the fields Powertools reads."""

    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


@contextmanager
def invocation(context: LocalContext) -> Iterator[None]:
    """Log keys of this invocation for the thread that runs it.

    Powertools' `inject_lambda_context` keeps the context's keys (`function_name`,
    `function_request_id`, ...) on the logger's formatter, one set per process. On Lambda a process
    runs one function; the local run hosts the intake and the dispatcher in one process, so a log
    line would name whichever function set them last. Powertools' thread-local keys win over those,
    so the local run sets them per invocation, in the invoking thread.
    """
    from aws_lambda_powertools.logging.formatter import remove_context_keys, set_context_keys

    keys = {
        "function_name": context.function_name,
        "function_request_id": context.aws_request_id,
        "function_arn": context.invoked_function_arn,
        "function_memory_size": context.memory_limit_in_mb,
    }
    set_context_keys(**keys)
    try:
        yield
    finally:
        remove_context_keys(keys)
