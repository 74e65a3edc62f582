"""Exit codes and the one exception type commands raise to stop with a message."""

from __future__ import annotations

OK = 0
NOT_FOUND = 1  # nothing matched, or only part of the work was done
USAGE = 2  # bad arguments, or the resources cannot be resolved or reached


class OpsError(Exception):
    """Stop the command: print `message` (and `hint`) without a traceback, exit with `exit_code`."""

    def __init__(self, message: str, *, exit_code: int = USAGE, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint
