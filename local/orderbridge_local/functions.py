"""The functions alone, in a process of their own: `python -m orderbridge_local.functions --state FILE`.

The intake behind the local API Gateway and the dispatcher fed by the local SQS poller, as in
`LocalSystem`, but connected to an already-running moto server and sandboxes and to resources
named in a state file written by `orderbridge_local.processes.ProcessRun` (nothing is created or
wiped here). Killing this process (SIGKILL) is what Lambda does to a function; starting it again
is a fresh execution environment. Kill points (`ORDERBRIDGE_LOCAL_KILL_AT`) are read from the
environment: see `orderbridge_local.killpoints`.

The state file (JSON): `environment` (variables for the functions, applied over this process's
own), `api_host`, `api_port`, `api_shape` (rest, http or url; None: the environment's or rest),
`sandbox_url`, `queue_url`, `queue_arn`, `workers`. `--env KEY=VALUE` (repeatable)
overrides the state's environment. Once serving, the process prints
`orderbridge-local functions ready pid=<pid> api=<url>` and, with `--ready-file`, writes its pid
there. SIGTERM or SIGINT stop it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from orderbridge_local.killpoints import KillPoints
from orderbridge_local.lifeline import die_with_parent


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderbridge_local.functions", description=__doc__)
    parser.add_argument("--state", type=Path, required=True, help="state file written by the local run")
    parser.add_argument("--env", type=_env_pair, action="append", default=[], help="KEY=VALUE override")
    parser.add_argument("--ready-file", type=Path, help="write this process's pid here once serving")
    parser.add_argument("--parent", type=int, help="die when this process (the parent) dies")
    args = parser.parse_args(argv)
    if args.parent:
        die_with_parent(args.parent)

    state: dict[str, Any] = json.loads(args.state.read_text())
    os.environ.update(state["environment"])
    os.environ.update(dict(args.env))
    points = KillPoints.from_env()  # a malformed ORDERBRIDGE_LOCAL_KILL_AT stops the start here
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    import boto3

    from orderbridge import clients
    from orderbridge_local.apigw import LocalApi
    from orderbridge_local.poller import QueuePoller
    from orderbridge_local.system import ROOT, load_function

    root = Path(state.get("root") or ROOT)
    points.install_botocore(clients.client)
    points.install_http(state["sandbox_url"])
    points.install_rate_limit_wait(importlib.import_module("orderbridge.dispatch.dispatcher"))

    def dispatcher_handler() -> Any:
        return points.instrument_dispatcher(load_function("dispatcher", root))

    intake = load_function("intake", root)
    handler = dispatcher_handler()
    api = LocalApi(
        handler=intake.lambda_handler,
        function_name="IntakeFunction",
        host=state.get("api_host") or "127.0.0.1",
        port=int(state["api_port"]),
        shape=state.get("api_shape"),
    )
    api.start()
    # The event source mapping is not the function: its calls have a client of their own, so they
    # are no kill points and a kill point counts only the functions' own calls.
    poller = QueuePoller(
        sqs=boto3.session.Session().client("sqs"),
        queue_url=state["queue_url"],
        queue_arn=state["queue_arn"],
        handler=handler,
        handler_factory=dispatcher_handler,
        function_name="DispatcherFunction",
        workers=int(state.get("workers", 1)),
        wait_seconds=0,  # short polls: a killed process leaves no long poll behind to take a message
        idle_sleep=0.1,
    ).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.ready_file:
        tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(args.ready_file)
    print(f"orderbridge-local functions ready pid={os.getpid()} api={api.url}", flush=True)
    while not stop.wait(0.5):
        pass
    poller.stop()
    api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
