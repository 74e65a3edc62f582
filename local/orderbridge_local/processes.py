"""The local run split into processes, so the functions can be killed while AWS and the providers live on.

    moto's server          its own process (`orderbridge_local.moto_atomic`)
    provider sandboxes     its own process (`python -m orderbridge_sandboxes`)
    functions              its own process (`python -m orderbridge_local.functions --state FILE`):
                           intake API + dispatcher poller; killed and restarted at will

`ProcessRun.start()` starts moto and the sandboxes, creates the resources from `template.yaml`
and uploads the configuration, once, and writes the state file the functions process reads.
`start_functions()` then starts (and restarts) the functions process, which connects to what is
already there and creates nothing. `orderbridge-local up --processes` and `tests/crashlib.py` use
it. Every child dies with this process (`orderbridge_local.lifeline`). This process's own
`os.environ` and `orderbridge.clients` are left alone: it talks to moto with clients of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import boto3

from orderbridge_local.apigw import SHAPE_ENV
from orderbridge_local.killpoints import KILL_AT_ENV
from orderbridge_local.setup import StoreSetup, load_setup
from orderbridge_local.system import (
    ROOT,
    ReloadResult,
    Settings,
    apply_setup,
    aws_environment,
    free_port,
    provision,
    python_module_argv,
    render_config,
    settings_environment,
    start_moto_process,
    wait_for_port,
)
from orderbridge_local.template_resources import LocalResources

SERVICES = ("dynamodb", "sqs", "s3", "secretsmanager")
IMPORT_SAMPLES = {
    "sample-orders.csv": "incoming/erp/sample-orders.csv",
    "sample-orders.jsonl": "incoming/jsonl/sample-orders.jsonl",
}


def start_sandbox_process(
    port: int,
    config: Path,
    *,
    lifeline: bool = True,
    stdout: IO[Any] | int | None = subprocess.DEVNULL,
    timeout: float = 30.0,
) -> subprocess.Popen[bytes]:
    """`python -m orderbridge_sandboxes` as a child process, once it answers on `port`."""
    proc = subprocess.Popen(  # noqa: S603 (fixed argv: this interpreter running the sandboxes)
        python_module_argv(
            "orderbridge_sandboxes",
            "--config",
            str(config),
            "--port",
            str(port),
            "--quiet",
            lifeline=lifeline,
        ),
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout not in (None, subprocess.DEVNULL) else stdout,
        start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
    )
    wait_for_port(proc, port, "the provider sandboxes", timeout)
    return proc


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it lingers; always reaped."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


class ProcessRun:
    """moto + sandboxes + resources, and a functions process that may be killed and restarted.

    `functions_log`: where the functions process writes (appended; None: this process's stdout).
    `sample_feed`: serve the importer's sample feed from this process (as `LocalSystem` does).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        root: Path = ROOT,
        workdir: Path | None = None,
        functions_log: Path | None = None,
        sample_feed: bool = False,
    ) -> None:
        self.settings = settings or Settings()
        self.root = root
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="orderbridge-local-"))
        self.functions_log = functions_log
        self.sample_feed = sample_feed
        self.state_file = self.workdir / "functions-state.json"
        self.moto_process: subprocess.Popen[bytes] | None = None
        self.sandbox_process: subprocess.Popen[bytes] | None = None
        self.functions: subprocess.Popen[bytes] | None = None
        self.functions_started = 0  # how many functions processes were started
        self.resources: LocalResources | None = None
        self.environment: dict[str, str] = {}
        self.feed: Any = None
        self._clients: dict[str, Any] = {}
        self._log: IO[bytes] | None = None
        self.config_path = self.settings.config or root / "config" / "local.json"
        self.setup: StoreSetup | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> ProcessRun:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        s = self.settings
        self.setup = load_setup(self.config_path)  # StoreSetupError before anything starts
        moto_port = s.moto_port or free_port()
        self.moto_url = f"http://127.0.0.1:{moto_port}"
        self.moto_process = start_moto_process(moto_port, lifeline=True, start_new_session=True)
        sandbox_port = s.sandbox_port or free_port()
        self.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        sandboxes = self.workdir / "sandboxes.json"  # the setup's accounts, listed and derived
        sandboxes.write_text(json.dumps(self.setup.sandboxes, indent=2))
        self.sandbox_process = start_sandbox_process(sandbox_port, sandboxes)
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        self._clients = {name: session.client(name, endpoint_url=self.moto_url) for name in SERVICES}  # type: ignore[call-overload]
        self.resources = provision(
            self.setup, self.root, client=self.client, max_receive_count=s.max_receive_count
        )
        if s.visibility_timeout is not None:
            self.client("sqs").set_queue_attributes(
                QueueUrl=self.queue_url, Attributes={"VisibilityTimeout": str(s.visibility_timeout)}
            )
        if self.sample_feed:
            from orderbridge_local.feed import serve_sample

            self.feed = serve_sample(self.client("secretsmanager"))
        self.upload_config()
        for name, key in IMPORT_SAMPLES.items():
            self.client("s3").put_object(
                Bucket=self.resources.buckets["ImportBucket"],
                Key=key,
                Body=(self.root / "config" / "imports" / name).read_bytes(),
            )
        from orderbridge import constants

        self.api_port = s.api_port or free_port()
        api_host = "127.0.0.1" if s.api_host in ("0.0.0.0", "") else s.api_host
        self.api_url = f"http://{api_host}:{self.api_port}"
        self.environment = {
            **aws_environment(self.moto_url),
            **self.resources.environment(),
            constants.IMPORT_STATE_TABLE_ENV: self.resources.tables["ImportStateTable"],
            constants.IMPORT_BUCKET_ENV: self.resources.buckets["ImportBucket"],
            **settings_environment(s),
        }
        state = {
            "root": str(self.root),
            "environment": self.environment,
            "api_port": self.api_port,
            "sandbox_url": self.sandbox_url,
            "queue_url": self.queue_url,
            "queue_arn": self.resources.queue_arns["OrderQueue"],
            "workers": s.workers,
            "api_host": s.api_host,
            "api_shape": s.api_shape,
        }
        self.state_file.write_text(json.dumps(state, indent=2))

    def stop(self) -> None:
        """Stop the functions, the sandboxes and moto (in that order); remove the work directory."""
        self.stop_functions()
        stop_process(self.sandbox_process)
        stop_process(self.moto_process)
        if self.feed is not None:
            self.feed.shutdown()
            self.feed = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ProcessRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the functions process -------------------------------------------------------------------

    def start_functions(
        self, kill_at: str | None = None, env: dict[str, str] | None = None, *, timeout: float = 60.0
    ) -> subprocess.Popen[bytes]:
        """Start a fresh functions process and return once it serves (raises if it dies first).

        `kill_at`: its `ORDERBRIDGE_LOCAL_KILL_AT` (see `orderbridge_local.killpoints`); this
        process's own value is never passed on. `env`: variables over the state's environment.
        """
        if self.functions is not None and self.functions.poll() is None:
            raise RuntimeError("the functions process is still running; kill or stop it first")
        self.functions_started += 1
        ready = self.workdir / f"functions-{self.functions_started}.ready"
        child_env = {k: v for k, v in os.environ.items() if k != KILL_AT_ENV}
        child_env["PYTHONUNBUFFERED"] = "1"
        if kill_at:
            child_env[KILL_AT_ENV] = kill_at
        argv = [
            sys.executable,
            "-m",
            "orderbridge_local.functions",
            "--state",
            str(self.state_file),
            "--ready-file",
            str(ready),
            "--parent",
            str(os.getpid()),
        ]
        for name, value in (env or {}).items():
            argv += ["--env", f"{name}={value}"]
        out: IO[bytes] | None = None
        if self.functions_log is not None:
            if self._log is None:
                self._log = self.functions_log.open("ab")
            out = self._log
        self.functions = subprocess.Popen(  # noqa: S603 (fixed argv: this interpreter)
            argv, env=child_env, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            code = self.functions.poll()
            if code is not None:
                raise RuntimeError(f"the functions process exited while starting (code {code})")
            if time.monotonic() > deadline:
                self.kill_functions()
                raise RuntimeError(f"the functions process was not ready within {timeout:g} s")
            time.sleep(0.05)
        return self.functions

    @property
    def functions_alive(self) -> bool:
        return self.functions is not None and self.functions.poll() is None

    def wait_functions_exit(self, timeout: float) -> int | None:
        """The functions process's exit code (negative: killed by that signal), or None if it still runs."""
        if self.functions is None:
            return None
        try:
            return self.functions.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill_functions(self) -> None:
        """SIGKILL the functions process now (as Lambda does) and reap it."""
        if self.functions is not None and self.functions.poll() is None:
            self.functions.send_signal(signal.SIGKILL)
            self.functions.wait(timeout=10)

    def stop_functions(self) -> None:
        stop_process(self.functions)

    # --- views -----------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """This process's own boto3 client for `service`, on moto's server."""
        return self._clients[service]

    def reload(self) -> ReloadResult:
        """Apply the store setup file as it is now (as `LocalSystem.reload`): refused with its
        problems, or secrets and sandbox accounts provisioned and the document uploaded; the
        functions process reads it within `CONFIG_MAX_AGE_SECONDS` (1 s locally), no restart."""
        assert self.setup is not None
        setup, result = apply_setup(
            self.config_path,
            current=self.setup,
            secretsmanager=self.client("secretsmanager"),
            sandbox_url=self.sandbox_url,
        )
        if setup is not None:
            self.setup = setup
            self.upload_config()
        return result

    def upload_config(self, document: dict[str, Any] | None = None) -> None:
        """Put the configuration document (default: the store setup's) where the functions read it."""
        from orderbridge import constants

        assert self.resources is not None
        if document is None and self.setup is not None:
            document = self.setup.document
        feed_url = self.feed.url if self.feed is not None else None
        text = render_config(self.root, sandbox_url=self.sandbox_url, feed_url=feed_url, document=document)
        key = self.resources.environment().get(constants.CONFIG_KEY_ENV, constants.CONFIG_KEY_DEFAULT)
        self.client("s3").put_object(
            Bucket=self.resources.buckets["ConfigBucket"], Key=key, Body=text.encode()
        )

    @property
    def queue_url(self) -> str:
        assert self.resources is not None
        return self.resources.queues["OrderQueue"]

    @property
    def dlq_url(self) -> str:
        assert self.resources is not None
        return self.resources.queues["OrderDeadLetterQueue"]

    @property
    def tables(self) -> dict[str, str]:
        assert self.resources is not None
        return dict(self.resources.tables)

    def endpoints(self) -> dict[str, str]:
        assert self.resources is not None
        found = {
            "intake API": self.api_url,
            "form endpoint": f"{self.api_url}/forms/<form_key>",
            "webhook endpoint": f"{self.api_url}/webhooks/<source>",
            "status endpoint": f"{self.api_url}/orders/<tracking_id>",
            "provider sandboxes": self.sandbox_url,
            "moto server (AWS_ENDPOINT_URL)": self.moto_url,
            "order queue": self.queue_url,
            "dead-letter queue": self.dlq_url,
            "outcome table": self.resources.tables["OutcomeTable"],
            "functions state file": str(self.state_file),
            "store setup (edit to reload)": str(self.config_path),
            # as the functions process resolves it (apigw.LocalApi): the option, else the variable
            "intake event shape": self.settings.api_shape or os.environ.get(SHAPE_ENV, "rest"),
        }
        if self.feed is not None:
            found["sample feed"] = f"{self.feed.url}/orders"
        return found

    def state(self) -> dict[str, str]:
        """What the operator CLI reads (`.orderbridge-local.json`), as `LocalSystem.state()`."""
        assert self.resources is not None
        found = {
            "endpoint_url": self.moto_url,
            "region": "us-east-1",
            "outcome_table": self.resources.tables["OutcomeTable"],
            "order_queue_url": self.queue_url,
            "dead_letter_queue_url": self.dlq_url,
            "api_url": self.api_url,
            "sandbox_url": self.sandbox_url,
            "import_bucket": self.resources.buckets["ImportBucket"],
            "import_state_table": self.resources.tables["ImportStateTable"],
            "config_bucket": self.resources.buckets["ConfigBucket"],
            "config": str(self.config_path),
        }
        if self.feed is not None:
            found["sample_feed_url"] = f"{self.feed.url}/orders"
        return found
