"""The whole system on one machine: moto's server, the sandboxes, the real handlers.

Resources come from `template.yaml` itself (so the local run cannot drift from what deploys),
configuration and secrets from `config/`, and the functions are the real `functions/*/app.py`
modules, invoked the way API Gateway and SQS's event source mapping invoke them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.server import ThreadedMotoServer

from orderbridge_local import moto_atomic
from orderbridge_local.apigw import LocalApi
from orderbridge_local.poller import QueuePoller
from orderbridge_local.template_resources import LocalResources, create_resources, load_template

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "orderbridge-local"
STATE_FILE = ROOT / ".orderbridge-local.json"  # written by `orderbridge-local up` for the operator CLI
SAMPLE_FEED_PLACEHOLDER = "http://sample-feed.invalid"  # the sample feed's URL in config/local.json


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(proc: subprocess.Popen[bytes], port: int, what: str, timeout: float = 30.0) -> None:
    """Return once `proc` answers on `port`; kill it and raise if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start (code {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=10)
    raise RuntimeError(f"{what} did not answer on port {port} within {timeout:g} s")


def python_module_argv(module: str, *args: str, lifeline: bool = False) -> list[str]:
    """`python -m module args`; with `lifeline` it dies with this process (orderbridge_local.lifeline)."""
    if lifeline:
        guard = ["-m", "orderbridge_local.lifeline", "--parent", str(os.getpid()), "--"]
        return [sys.executable, *guard, module, *args]
    return [sys.executable, "-m", module, *args]


def start_moto_process(
    port: int, timeout: float = 30.0, *, lifeline: bool = False, start_new_session: bool = False
) -> subprocess.Popen[bytes]:
    """moto's server (with atomic DynamoDB writes) as a child process, once it answers on `port`."""
    proc = subprocess.Popen(  # noqa: S603 (fixed argv: this interpreter running moto)
        python_module_argv(
            "orderbridge_local.moto_atomic", "-H", "127.0.0.1", "-p", str(port), lifeline=lifeline
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=start_new_session,
    )
    wait_for_port(proc, port, "moto's server", timeout)
    return proc


def aws_environment(moto_url: str) -> dict[str, str]:
    """What points boto3 (and Powertools) at moto's server, as the local run sets it for the functions."""
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
    }


def settings_environment(settings: Settings) -> dict[str, str]:
    """The functions' knobs (retries, timeouts, lease) from the local run's settings."""
    from orderbridge import constants

    env = {
        constants.RETRY_BASE_DELAY_ENV: str(settings.retry_base_delay),
        constants.RETRY_MAX_DELAY_ENV: str(settings.retry_max_delay),
        constants.PROVIDER_TIMEOUT_ENV: str(settings.provider_timeout),
        constants.CONFIG_MAX_AGE_ENV: "1",
        constants.RATE_LIMIT_MAX_WAIT_ENV: str(settings.rate_limit_max_wait),
    }
    if settings.lease_seconds is not None:
        env[constants.LEASE_SECONDS_ENV] = str(settings.lease_seconds)
    return env


def render_config(
    root: Path, *, sandbox_url: str, feed_url: str | None = None, document: dict[str, Any] | None = None
) -> str:
    """The configuration document (default `config/local.json`) with the local URLs filled in."""
    text = json.dumps(document) if document is not None else (root / "config" / "local.json").read_text()
    text = text.replace("${SANDBOX_URL}", sandbox_url)
    if feed_url is not None:  # config/local.json names the sample feed by a reserved, unresolvable host
        text = text.replace(SAMPLE_FEED_PLACEHOLDER, feed_url)
    return text


def check_local_files(root: Path = ROOT) -> list[str]:
    """What is wrong with config/local.json, config/local-secrets.json and config/sandboxes.json,
    one line each (empty: nothing). `orderbridge-local up` starts nothing while there is any.

    The configuration is checked as the functions check it (`orderbridge.config.validate_document`,
    with the local run's placeholders filled in); every secret it names must have a value in
    local-secrets.json (or be created by the local run itself: the sample feed's)."""
    from orderbridge.config import InvalidConfigurationError, validate_document
    from orderbridge_local.feed import SAMPLE_SECRET_ID

    problems: list[str] = []
    config_dir = root / "config"
    config = None
    try:
        config = validate_document((config_dir / "local.json").read_text(encoding="utf-8"), local=True)
    except InvalidConfigurationError as exc:
        problems += [f"config/local.json: {p}" for p in exc.problems]
    except OSError as exc:
        problems.append(f"config/local.json: {exc}")

    secrets: dict[str, Any] = {}
    try:
        loaded = json.loads((config_dir / "local-secrets.json").read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError("must be a JSON object: secret id -> value")
        secrets = {k: v for k, v in loaded.items() if not k.startswith("_")}
        problems += [
            f"config/local-secrets.json: {k!r} must be a JSON object or a string"
            for k, v in secrets.items()
            if not isinstance(v, dict | str)
        ]
    except (OSError, ValueError) as exc:
        problems.append(f"config/local-secrets.json: {exc}")

    if config is not None:
        named = [(f"destination {n!r}", d.secret_id) for n, d in config.destinations.items()]
        named += [(f"webhook source {n!r}", w.secret_id) for n, w in config.webhooks.items()]
        named += [
            (f"import source {n!r}", secret_id)
            for n, i in config.imports.items()
            if (secret_id := getattr(i, "secret_id", None))
        ]
        for who, secret_id in named:
            if secret_id not in secrets and secret_id != SAMPLE_SECRET_ID:
                problems.append(
                    f"config/local.json: {who} names secret {secret_id!r}, which has no value in "
                    "config/local-secrets.json: add it there (and, for AWS, to template.yaml)"
                )

    try:
        from orderbridge_sandboxes import load_config

        load_config(config_dir / "sandboxes.json")
    except Exception as exc:  # pydantic, JSON or file errors: each says what is wrong
        problems.append(f"config/sandboxes.json: {exc}")
    return problems


def provision(
    root: Path, *, client: Callable[[str], Any], max_receive_count: int | None = None
) -> tuple[LocalResources, dict[str, Any]]:
    """The template's resources on moto (`client(service)` gives its boto3 clients) with the
    values of config/local-secrets.json; a secret there that the template does not declare is
    created too, so one added there is never ignored. Returns the resources and the secrets."""
    secrets = {
        k: v
        for k, v in json.loads((root / "config" / "local-secrets.json").read_text()).items()
        if not k.startswith("_")
    }
    resources = create_resources(
        template=load_template(root / "template.yaml"),
        prefix=PREFIX,
        dynamodb=client("dynamodb"),
        sqs=client("sqs"),
        s3=client("s3"),
        secretsmanager=client("secretsmanager"),
        secret_values={k: json.dumps(v) for k, v in secrets.items()},
        parameter_overrides={"MaxReceiveCount": str(max_receive_count)} if max_receive_count else {},
    )
    secretsmanager = client("secretsmanager")
    declared = set(resources.secrets.values())
    for name, value in secrets.items():
        if name in declared:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            secretsmanager.create_secret(Name=name, SecretString=text)
        except secretsmanager.exceptions.ResourceExistsException:
            secretsmanager.put_secret_value(SecretId=name, SecretString=text)
    return resources, secrets


def load_function(name: str, root: Path = ROOT) -> ModuleType:
    """Import `functions/<name>/app.py` as Lambda would, under a unique module name."""
    path = root / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"orderbridge_function_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Settings:
    """Knobs of the local run. Defaults are the deployed defaults, except for speed where noted."""

    api_port: int = 0
    sandbox_port: int = 0
    moto_port: int = 0
    workers: int = 1
    start_poller: bool = True
    retry_base_delay: float = 2.0  # deployed: 30 s
    retry_max_delay: float = 30.0  # deployed: 900 s
    max_receive_count: int | None = None  # None: the template's default
    visibility_timeout: int | None = None  # None: the template's value
    provider_timeout: float = 5.0
    lease_seconds: int | None = None
    rate_limit_max_wait: float = 5.0
    # moto in a process of its own: AWS's side then stops competing with the handlers for this
    # process's GIL, as it never does in AWS (bench/throughput.py)
    moto_process: bool = False


class LocalSystem:
    """Start with `start()` (or as a context manager); `stop()` tears it down."""

    def __init__(self, settings: Settings | None = None, *, root: Path = ROOT) -> None:
        self.settings = settings or Settings()
        self.root = root
        self.moto: ThreadedMotoServer | None = None
        self._moto_process: subprocess.Popen[bytes] | None = None
        self.sandbox: Any = None
        self.api: LocalApi | None = None
        self.poller: QueuePoller | None = None
        self.resources: LocalResources | None = None
        self.intake: ModuleType | None = None
        self.dispatcher: ModuleType | None = None
        self.importer: ModuleType | None = None  # functions/importer/app.py (imports; docs/imports.md)
        self.feed: Any = None  # the sample storefront feed (orderbridge_local.feed)
        self.secrets: dict[str, Any] = {}

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalSystem:
        s = self.settings
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per moto call otherwise
        moto_port = s.moto_port or free_port()
        moto_atomic.install()  # DynamoDB's atomic conditional writes, which moto lacks
        if s.moto_process:
            self._moto_process = start_moto_process(moto_port)
        else:
            self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
            self.moto.start()
        self.moto_url = f"http://127.0.0.1:{moto_port}"
        os.environ.update(aws_environment(self.moto_url))
        from orderbridge import clients

        self.sandbox = self._start_sandboxes()
        self.resources, self.secrets = provision(
            self.root, client=clients.client, max_receive_count=s.max_receive_count
        )
        env = self.resources.environment()
        os.environ.update(env)
        os.environ.update(self._importer_environment())
        self.feed = self._start_sample_feed()
        if s.visibility_timeout is not None:
            clients.client("sqs").set_queue_attributes(
                QueueUrl=self.queue_url, Attributes={"VisibilityTimeout": str(s.visibility_timeout)}
            )
        os.environ.update(settings_environment(s))
        self.upload_config()
        self.intake = load_function("intake", self.root)
        self.dispatcher = load_function("dispatcher", self.root)
        self.importer = load_function("importer", self.root)
        self._upload_import_samples()
        self.api = LocalApi(
            handler=self.intake.lambda_handler, function_name="IntakeFunction", port=s.api_port
        ).start()
        self.poller = QueuePoller(
            sqs=clients.client("sqs"),
            queue_url=self.queue_url,
            queue_arn=self.resources.queue_arns["OrderQueue"],
            handler=self.dispatcher.lambda_handler,
            handler_factory=lambda: load_function("dispatcher", self.root).lambda_handler,
            function_name="DispatcherFunction",
            workers=s.workers,
        )
        if s.start_poller:
            self.poller.start()
        return self

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()
        if self.api is not None:
            self.api.shutdown()
        if self.sandbox is not None:
            self.sandbox.shutdown()
        if self.feed is not None:
            self.feed.shutdown()
        if self.moto is not None:
            self.moto.stop()
        if self._moto_process is not None:
            self._moto_process.terminate()
            self._moto_process.wait(timeout=10)

    def __enter__(self) -> LocalSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- pieces ----------------------------------------------------------------------------------

    def _start_sandboxes(self) -> Any:
        from orderbridge_sandboxes import load_config, serve

        config = load_config(self.root / "config" / "sandboxes.json")
        return serve(config, port=self.settings.sandbox_port)

    def upload_config(self, document: dict[str, Any] | None = None) -> None:
        """Put the configuration document (default `config/local.json`) where the functions read it.

        The functions of this process read it on their next call (their caches are told), so a
        test or a demo need not wait out `CONFIG_MAX_AGE_SECONDS`."""
        from orderbridge import clients, constants
        from orderbridge.config import ConfigStore

        feed_url = self.feed.url if self.feed is not None else None
        text = render_config(self.root, sandbox_url=self.sandbox.url, feed_url=feed_url, document=document)
        clients.client("s3").put_object(
            Bucket=os.environ[constants.CONFIG_BUCKET_ENV],
            Key=os.environ.get(constants.CONFIG_KEY_ENV, constants.CONFIG_KEY_DEFAULT),
            Body=text.encode(),
        )
        ConfigStore.refresh_all()

    def _importer_environment(self) -> dict[str, str]:
        """ImporterFunction's own variables (template.yaml), resolved to the local resources."""
        from orderbridge import constants

        assert self.resources is not None
        return {
            constants.IMPORT_STATE_TABLE_ENV: self.resources.tables["ImportStateTable"],
            constants.IMPORT_BUCKET_ENV: self.resources.buckets["ImportBucket"],
        }

    def _start_sample_feed(self) -> Any:
        from orderbridge import clients
        from orderbridge_local.feed import serve_sample

        return serve_sample(clients.client("secretsmanager"))

    def _upload_import_samples(self) -> None:
        """config/imports/sample-orders.* where the sample sources (config/local.json) look for files."""
        from orderbridge import clients

        samples = {
            "sample-orders.csv": "incoming/erp/sample-orders.csv",
            "sample-orders.jsonl": "incoming/jsonl/sample-orders.jsonl",
        }
        for name, key in samples.items():
            clients.client("s3").put_object(
                Bucket=self.import_bucket,
                Key=key,
                Body=(self.root / "config" / "imports" / name).read_bytes(),
            )

    @property
    def import_bucket(self) -> str:
        assert self.resources is not None
        return self.resources.buckets["ImportBucket"]

    def local_config(self) -> dict[str, Any]:
        return json.loads((self.root / "config" / "local.json").read_text())

    # --- handy views -----------------------------------------------------------------------------

    @property
    def queue_url(self) -> str:
        assert self.resources is not None
        return self.resources.queues["OrderQueue"]

    @property
    def dlq_url(self) -> str:
        assert self.resources is not None
        return self.resources.queues["OrderDeadLetterQueue"]

    def endpoints(self) -> dict[str, str]:
        assert self.api is not None and self.resources is not None
        return {
            "intake API": self.api.url,
            "form endpoint": f"{self.api.url}/forms/<form_key>",
            "webhook endpoint": f"{self.api.url}/webhooks/<source>",
            "status endpoint": f"{self.api.url}/orders/<tracking_id>",
            "provider sandboxes": self.sandbox.url,
            "moto server (AWS_ENDPOINT_URL)": self.moto_url,
            "order queue": self.queue_url,
            "dead-letter queue": self.dlq_url,
            "outcome table": self.resources.tables["OutcomeTable"],
            "import bucket": self.import_bucket,
            "import state table": self.resources.tables["ImportStateTable"],
            "sample feed": f"{self.feed.url}/orders",
        }

    def state(self) -> dict[str, str]:
        """What tools outside this process need to reach the local run (see `STATE_FILE`)."""
        assert self.api is not None and self.resources is not None
        return {
            "endpoint_url": self.moto_url,
            "region": "us-east-1",
            "outcome_table": self.resources.tables["OutcomeTable"],
            "order_queue_url": self.queue_url,
            "dead_letter_queue_url": self.dlq_url,
            "api_url": self.api.url,
            "sandbox_url": self.sandbox.url,
            "import_bucket": self.import_bucket,
            "import_state_table": self.resources.tables["ImportStateTable"],
            "config_bucket": self.resources.buckets["ConfigBucket"],
            "sample_feed_url": f"{self.feed.url}/orders",
        }

    def wait_for(self, tracking_id: str, *, final: bool = True, timeout: float = 30.0) -> list[Any]:
        """Poll the outcome table until every destination of the order is final (or timeout)."""
        from orderbridge import wiring
        from orderbridge.models.outcome import FINAL_STATUSES

        store = wiring.outcome_store()
        deadline = time.monotonic() + timeout
        outcomes: list[Any] = []
        while time.monotonic() < deadline:
            outcomes = store.get(tracking_id)
            if outcomes and (not final or all(o.status in FINAL_STATUSES for o in outcomes)):
                return outcomes
            time.sleep(0.1)
        return outcomes
