"""The whole system on one machine: moto's server, the sandboxes, the real handlers.

Resources come from `template.yaml` itself (so the local run cannot drift from what deploys),
configuration, secrets and sandbox accounts from one store setup file (default `config/local.json`;
`orderbridge_local.setup`), and the functions are the real `functions/*/app.py` modules, invoked
the way API Gateway and SQS's event source mapping invoke them. `reload()` applies an edited setup
file to the running system: nothing is recreated, so queues, tables and records stay.
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
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.server import ThreadedMotoServer

from orderbridge_local import moto_atomic
from orderbridge_local.apigw import LocalApi
from orderbridge_local.errors import StoreSetupError
from orderbridge_local.poller import QueuePoller
from orderbridge_local.setup import StoreSetup, check_setup, load_setup
from orderbridge_local.template_resources import LocalResources, create_resources, load_template

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "orderbridge-local"
STATE_FILE = ROOT / ".orderbridge-local.json"  # written by `orderbridge-local up` for the operator CLI
SAMPLE_FEED_PLACEHOLDER = "http://sample-feed.invalid"  # the sample feed's URL in config/local.json
DEFAULT_CONFIG = ROOT / "config" / "local.json"  # the demo's store setup file
WORK_DIR = ROOT / ".orderbridge-local"  # the demo's log file, `up`'s reload results


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
    """The configuration document (default `config/local.json`) as uploaded: the local URLs filled
    in and the setup file's `local` block left out (the functions never see it)."""
    from orderbridge.config.check import LOCAL_BLOCK

    if document is None:
        document = json.loads((root / "config" / "local.json").read_text())
    text = json.dumps({k: v for k, v in document.items() if k != LOCAL_BLOCK})
    text = text.replace("${SANDBOX_URL}", sandbox_url)
    if feed_url is not None:  # config/local.json names the sample feed by a reserved, unresolvable host
        text = text.replace(SAMPLE_FEED_PLACEHOLDER, feed_url)
    return text


def check_local_files(root: Path = ROOT, config: Path | None = None) -> list[str]:
    """What is wrong with a store setup file (default `config/local.json` of `root`), one line
    each (empty: nothing). `orderbridge-local up` starts nothing while there is any.

    The document is checked as the functions check it (`orderbridge.config.validate_document`,
    local placeholders allowed); every secret it names must be derived or listed in its `local`
    block, and every sandbox account must be one the sandbox accepts (`orderbridge_local.setup`)."""
    return check_setup(config or root / "config" / "local.json")


def provision_secrets(
    secretsmanager: Any, secrets: dict[str, Any], *, only_changed: bool = False
) -> list[str]:
    """Create or update each secret (id -> JSON value or string) in Secrets Manager; returns the ids
    written. `only_changed`: leave a secret whose stored value is already this one alone."""
    written: list[str] = []
    for name, value in secrets.items():
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            if only_changed and secretsmanager.get_secret_value(SecretId=name)["SecretString"] == text:
                continue
        except secretsmanager.exceptions.ResourceNotFoundException:
            pass
        try:
            secretsmanager.create_secret(Name=name, SecretString=text)
        except secretsmanager.exceptions.ResourceExistsException:
            secretsmanager.put_secret_value(SecretId=name, SecretString=text)
        written.append(name)
    return written


def _replacing_patch(old: Any, new: Any) -> Any:
    """A deep-merge patch (`orderbridge_sandboxes.config.deep_merge`) that turns `old` into `new`:
    keys `new` no longer has are removed (None), at any depth."""
    if isinstance(old, dict) and isinstance(new, dict):
        patch = {k: _replacing_patch(old.get(k), v) for k, v in new.items()}
        patch |= {k: None for k in old if k not in new}
        return patch
    return new


def push_sandbox_accounts(sandbox_url: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Give the running sandboxes the accounts of `new` that differ from `old` (each provider's
    `POST /_sandbox/<provider>/config`); returns `provider/account` for each one pushed.
    An account `new` no longer lists is left in place (an order in flight may still use it)."""
    import requests

    pushed: list[str] = []
    for provider, config in new.items():
        if str(provider).startswith("_") or not isinstance(config, dict):
            continue
        before = ((old.get(provider) or {}).get("accounts")) or {}
        patch = {
            account_id: _replacing_patch(before.get(account_id), account)
            for account_id, account in (config.get("accounts") or {}).items()
            if not str(account_id).startswith("_") and before.get(account_id) != account
        }
        if patch:
            answer = requests.post(
                f"{sandbox_url}/_sandbox/{provider}/config", json={"accounts": patch}, timeout=10
            )
            answer.raise_for_status()
            pushed += [f"{provider}/{a}" for a in patch]
    return pushed


@dataclass
class ReloadResult:
    """What a reload did: `problems` (the file was refused, nothing changed) or what it applied,
    with `warnings` about what it changed (a source's shop: `orderbridge.identity.ShopChange`)."""

    path: Path
    problems: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.problems:
            count = len(self.problems)
            return (
                f"{self.path.name}: refused ({count} problem{'s' if count != 1 else ''}); "
                "the running configuration stays"
            )
        parts = ["configuration uploaded"]
        if self.secrets:
            parts.append(f"secrets written: {', '.join(self.secrets)}")
        if self.accounts:
            parts.append(f"sandbox accounts: {', '.join(self.accounts)}")
        warned = "".join(f"\n  warning: {w}" for w in self.warnings)
        return f"{self.path.name}: reloaded ({'; '.join(parts)}){warned}"


def apply_setup(
    path: Path, *, current: StoreSetup, secretsmanager: Any, sandbox_url: str
) -> tuple[StoreSetup | None, ReloadResult]:
    """Reload's first half, shared by both local modes: the store setup file at `path` checked
    (refused: `(None, result with its problems)`, nothing touched), else its new or changed secrets
    written and its sandbox accounts pushed, with a warning for each source whose shop it changes
    (as `orderbridge config validate FILE --local` gives); the caller then uploads the document."""
    try:
        setup = load_setup(path)
    except StoreSetupError as exc:
        return None, ReloadResult(path, problems=exc.problems)
    from orderbridge.identity import document_shop_changes

    result = ReloadResult(path)
    result.warnings = [c.message() for c in document_shop_changes(current.document, setup.document)]
    result.secrets = provision_secrets(secretsmanager, setup.secrets, only_changed=True)
    result.accounts = push_sandbox_accounts(sandbox_url, current.sandboxes, setup.sandboxes)
    return setup, result


def provision(
    setup: StoreSetup,
    root: Path = ROOT,
    *,
    client: Callable[[str], Any],
    max_receive_count: int | None = None,
) -> LocalResources:
    """The template's resources on moto (`client(service)` gives its boto3 clients) with the store
    setup's secrets; a secret the template does not declare is created too, so one the setup
    lists or derives is never ignored."""
    resources = create_resources(
        template=load_template(root / "template.yaml"),
        prefix=PREFIX,
        dynamodb=client("dynamodb"),
        sqs=client("sqs"),
        s3=client("s3"),
        secretsmanager=client("secretsmanager"),
        secret_values={k: setup.secret_text(k) for k in setup.secrets},
        parameter_overrides={"MaxReceiveCount": str(max_receive_count)} if max_receive_count else {},
    )
    declared = set(resources.secrets.values())
    provision_secrets(client("secretsmanager"), {k: v for k, v in setup.secrets.items() if k not in declared})
    return resources


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
    config: Path | None = None  # the store setup file; None: config/local.json of the root
    api_host: str = "127.0.0.1"
    api_shape: str | None = None  # rest | http | url; None: $ORDERBRIDGE_LOCAL_EVENT_SHAPE, else rest


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
        self.config_path = self.settings.config or root / "config" / "local.json"
        self.setup: StoreSetup | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalSystem:
        s = self.settings
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per moto call otherwise
        self.setup = load_setup(self.config_path)  # StoreSetupError before anything starts
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
        self.resources = provision(
            self.setup, self.root, client=clients.client, max_receive_count=s.max_receive_count
        )
        self.secrets = dict(self.setup.secrets)
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
            handler=self.intake.lambda_handler,
            function_name="IntakeFunction",
            host=s.api_host,
            port=s.api_port,
            shape=s.api_shape,
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
        from orderbridge_sandboxes import serve

        assert self.setup is not None
        return serve(self.setup.sandboxes, port=self.settings.sandbox_port)

    def reload(self) -> ReloadResult:
        """Apply the store setup file as it is now, without a restart: checked first (refused with
        its problems, the running one untouched), then new or changed secrets and sandbox accounts
        provisioned and the document uploaded. Queues, tables and records are not touched."""
        from orderbridge import clients

        assert self.setup is not None
        setup, result = apply_setup(
            self.config_path,
            current=self.setup,
            secretsmanager=clients.client("secretsmanager"),
            sandbox_url=self.sandbox.url,
        )
        if setup is not None:
            self.setup = setup
            self.secrets = dict(setup.secrets)
            self.upload_config()
        return result

    def upload_config(self, document: dict[str, Any] | None = None) -> None:
        """Put the configuration document (default: the store setup's) where the functions read it.

        The functions of this process read it on their next call (their caches are told), so a
        test or a demo need not wait out `CONFIG_MAX_AGE_SECONDS`."""
        from orderbridge import clients, constants
        from orderbridge.config import ConfigStore

        feed_url = self.feed.url if self.feed is not None else None
        if document is None and self.setup is not None:
            document = self.setup.document
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
        """A copy of the configuration document in use (no `local` block): edit it, `upload_config` it."""
        from orderbridge.config.check import LOCAL_BLOCK

        if self.setup is not None:
            return json.loads(json.dumps(self.setup.document))
        return {k: v for k, v in json.loads(self.config_path.read_text()).items() if k != LOCAL_BLOCK}

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
            "store setup (edit to reload)": str(self.config_path),
            "intake event shape": self.api.shape,
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
            "config": str(self.config_path),
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
