"""Errors of the local run, each with a stable machine-readable code."""

from __future__ import annotations


class StoreSetupError(Exception):
    """A store setup file the local run cannot use; `problems` has one line each, naming where."""

    code = "LOCAL_SETUP_INVALID"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("store setup not usable:\n" + "\n".join(f"- {p}" for p in problems))


class NotRunningError(Exception):
    """`orderbridge-local reload` found no running `up` to tell (no state file, or its pid is gone)."""

    code = "LOCAL_NOT_RUNNING"
