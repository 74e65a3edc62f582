"""The local run (`orderbridge-local`): one store setup file, reload without a restart or lost
state (in-process and with the functions in a process of their own), the demo's clean output,
and the local API's two event shapes. Everything runs for real: moto's server, the sandboxes,
the real handlers, the operator CLI."""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from orderbridge.models.outcome import OutcomeStatus
from orderbridge_local.apigw import LocalApi
from orderbridge_local.errors import StoreSetupError
from orderbridge_local.reload import ConfigWatcher, install_sighup, request_reload
from orderbridge_local.setup import build_setup, derived_token, load_setup
from orderbridge_local.system import ReloadResult, Settings
from orderbridge_ops import cli as ops_cli
from tests.factories import ops_options, tracking_id_for

ROOT = Path(__file__).resolve().parents[1]
DEMO = json.loads((ROOT / "config" / "local.json").read_text())
WAIT = 60.0  # generous: a deadline for a condition on a busy machine, never a timing assert
# A fresh process's environment: none of the variables an in-process local run has set here
CLEAN_ENV = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}


def _store(**changes: Any) -> dict[str, Any]:
    """The demo setup plus a store of its own ("reload-bc"), with no local entry for it."""
    document = copy.deepcopy(DEMO)
    document["destinations"]["reload-bc"] = {
        "provider": "bigcommerce",
        "secret_id": "orderbridge/providers/reload-bc",
        "base_url": "${SANDBOX_URL}/bigcommerce",
        "settings": {"store_hash": "reloadshop", "currencies": changes.get("currencies", ["USD"])},
        "rate_limit": {"requests": 50, "per_seconds": 10, "burst": 10},
    }
    document["routes"]["reload"] = {
        "destinations": [{"destination": "reload-bc", "catalog": {"MUG-001": {"product_id": 112}}}]
    }
    return document


def _event(currency: str) -> tuple[str, str]:
    ext = f"RELOAD-{uuid.uuid4().hex[:10]}"
    order = {
        "external_order_id": ext,
        "currency": currency,
        "buyer": {"email": "grace@example.com"},
        "billing_address": {
            "first_name": "Grace",
            "last_name": "Hopper",
            "address1": "1 Compiler Way",
            "city": "Arlington",
            "zip": "22201",
            "country": "US",
        },
        "lines": [{"sku": "MUG-001", "quantity": 1, "unit_price": "12.50"}],
    }
    return json.dumps({"source": "erp", "route": "reload", "order": order}), tracking_id_for("erp", ext)


# --- one file per store setup ----------------------------------------------------------------------


def test_a_store_file_without_a_local_block_gets_its_sandbox_account_and_credentials_derived():
    document = _store()
    del document["local"]
    for name in ("stripe-demo", "partner-demo", "shopify-demo", "woocommerce-demo", "bigcommerce-demo"):
        del document["webhooks"][name]
    del document["imports"]["demo-feed"]
    setup = build_setup(document, Path("store.json"))
    token = derived_token("bigcommerce", "reloadshop")
    assert setup.secrets["orderbridge/providers/reload-bc"] == {"access_token": token}
    account = setup.sandboxes["bigcommerce"]["accounts"]["reloadshop"]
    assert account["token"] == token
    assert account["rate_limit"] == {"quota": 50, "window_ms": 10000}
    assert account["catalog"] == {"112": []}
    assert "local" not in setup.document
    lana = setup.sandboxes["lana"]["accounts"]["sh_LocalDemo"]  # derived: JWT-shaped, priced in cents
    assert setup.secrets["orderbridge/providers/lana-demo"] == {"token": lana["token"]}
    assert lana["catalog"]["va_Mug00001"] == {"price": 1250}


def test_the_demo_file_lists_only_what_cannot_be_derived_and_its_tokens_are_the_secrets():
    setup = load_setup(ROOT / "config" / "local.json")
    assert setup.secrets["orderbridge/providers/bigcommerce-demo"] == {
        "access_token": "local-bigcommerce-token"
    }
    bc = setup.sandboxes["bigcommerce"]["accounts"]["demo123"]
    assert "999" not in bc["catalog"]  # RETIRED-001 stays unknown to the sandbox, as listed
    assert bc["rate_limit"] == {"quota": 150, "window_ms": 30000}  # derived from the destination


def test_a_webhook_secret_not_listed_and_a_disagreeing_credential_are_problems_naming_them():
    document = _store()
    del document["local"]["secrets"]["orderbridge/webhooks/shopify-demo"]
    document["local"]["secrets"]["orderbridge/providers/bigcommerce-demo"] = {"access_token": "other"}
    with pytest.raises(StoreSetupError) as refused:
        build_setup(document, Path("store.json"))
    problems = refused.value.problems
    assert any("names secret 'orderbridge/webhooks/shopify-demo', which has no value" in p for p in problems)
    assert any("'bc-demo'" in p and "is not the token" in p for p in problems)
    assert refused.value.code == "LOCAL_SETUP_INVALID"


# --- reload without a restart, state kept -----------------------------------------------------------


def _ops(harness: Any, *args: str) -> int:
    return ops_cli.main([*args, *ops_options(harness.system.state())])


def test_fix_the_file_then_retry_in_process(harness, tmp_path, monkeypatch):
    """A wrong setting fails an order; the file is fixed while the system runs (the watcher picks
    the edit up; a broken edit in between is refused and changes nothing); `orderbridge retry`
    delivers it; the first order's record is still there."""
    monkeypatch.setenv("COLUMNS", "200")
    system = harness.system
    store = tmp_path / "store.json"
    store.write_text(json.dumps(_store(currencies=["USD"])))
    original = system.config_path
    results: list[ReloadResult] = []
    system.config_path = store
    watcher = ConfigWatcher(system, results.append, interval=0.1, result_file=tmp_path / "reload.json")
    try:
        first = watcher.reload_now()  # the new store's account and secret provisioned
        assert first.ok, first.problems
        assert "orderbridge/providers/reload-bc" in first.secrets
        assert "bigcommerce/reloadshop" in first.accounts
        watcher.start()
        queue_before = system.queue_url

        body, good_id = _event("USD")
        harness.send(body)
        harness.drain(until=harness.final(good_id), timeout=WAIT)
        (good,) = harness.outcomes(good_id)
        assert good.status is OutcomeStatus.SUCCEEDED

        body, failed_id = _event("EUR")  # the store does not take EUR yet: a permanent failure
        harness.send(body)
        harness.drain(until=harness.final(failed_id), timeout=WAIT)
        (failed,) = harness.outcomes(failed_id)
        assert failed.status is OutcomeStatus.FAILED_PERMANENT

        store.write_text(json.dumps(_store(currencies=["USD", "EURO"])))  # a typo: refused
        refused = watcher.wait_for(2, timeout=WAIT)
        assert refused is not None and not refused.ok
        assert any("reload-bc" in p and "EURO" in p for p in refused.problems)

        store.write_text(json.dumps(_store(currencies=["USD", "EUR"])))  # the fix
        fixed = watcher.wait_for(3, timeout=WAIT)
        assert fixed is not None and fixed.ok, fixed and fixed.problems
        assert fixed.accounts == ["bigcommerce/reloadshop"]  # its currencies follow the destination's

        assert _ops(harness, "retry", failed_id) == 0  # parked on the dead-letter queue, redriven
        harness.drain(until=harness.final(failed_id), timeout=WAIT)
        (delivered,) = harness.outcomes(failed_id)
        assert delivered.status is OutcomeStatus.SUCCEEDED and delivered.provider_order_id
        (still,) = harness.outcomes(good_id)  # state survived the reloads
        assert still.status is OutcomeStatus.SUCCEEDED and still.provider_order_id == good.provider_order_id
        assert system.queue_url == queue_before
    finally:
        watcher.stop()
        system.config_path = original
        assert system.reload().ok


def test_orderbridge_local_reload_asks_the_running_up_by_sighup_and_reports(harness, tmp_path):
    """What `orderbridge-local reload` does: SIGHUP to the pid in the state file, then the result."""
    system = harness.system
    store = tmp_path / "store.json"
    store.write_text("{ not json")
    original, system.config_path = system.config_path, store
    result_file = tmp_path / "reload.json"
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"pid": os.getpid(), "reload_result": str(result_file)}))
    watcher = ConfigWatcher(system, lambda _: None, interval=5.0, result_file=result_file).start()
    previous = signal.getsignal(signal.SIGHUP)
    install_sighup(watcher)
    try:
        refused = request_reload(timeout=WAIT, state_file=state)
        assert refused["ok"] is False and any("not JSON" in p for p in refused["problems"])
        store.write_text(json.dumps(_store()))
        applied = request_reload(timeout=WAIT, state_file=state)
        assert applied["ok"] is True and "reloaded" in applied["summary"]
    finally:
        signal.signal(signal.SIGHUP, previous)
        watcher.stop()
        system.config_path = original
        assert system.reload().ok


def test_reload_with_the_functions_in_a_process_of_their_own(tmp_path):
    from tests.crashlib import FAST_SETTINGS, CrashableRun

    store = tmp_path / "store.json"
    document = _store()
    del document["routes"]["reload"]  # not there yet: added while the run is up
    store.write_text(json.dumps(document))
    with CrashableRun(settings=Settings(workers=1, config=store, **FAST_SETTINGS)) as run:
        run.start_functions()
        store.write_text(json.dumps(_store()))
        result = run._run.reload()
        assert result.ok, result.problems
        body, _ = _event("USD")
        run.send(body)
        ext = json.loads(body)["order"]["external_order_id"]  # its tracking id is keyed by that run's key
        found = run.wait_for(lambda: run.outcomes_by_source_ref("erp", ext), timeout=WAIT, what="a record")
        (outcome,) = run.wait_final(found[0].tracking_id, timeout=WAIT)
        assert outcome.status is OutcomeStatus.SUCCEEDED, outcome.error_message


# --- the demo's output ------------------------------------------------------------------------------


def test_the_demo_prints_its_table_and_no_log_lines(tmp_path):
    events = tmp_path / "events"
    events.mkdir()
    for name in ("api-form-json.json", "sqs-provider-rejects.json", "api-webhook-shopify-tampered.json"):
        (events / name).write_text((ROOT / "events" / name).read_text())
    log = tmp_path / "demo.log"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orderbridge_local.cli",
            "demo",
            "--events",
            str(events),
            "--log-file",
            str(log),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**CLEAN_ENV, "POWERTOOLS_LOG_LEVEL": "INFO", "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("{")], done.stdout
    assert "3 of 3 samples behaved as expected" in done.stdout
    assert any(name in line for line in lines for name in ("api-form-json.json",))
    logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert logged and all("level" in entry for entry in logged)
    # one process hosts both functions: each line names the function that wrote it
    by_message = {}
    for entry in logged:
        by_message.setdefault(entry["message"], set()).add(entry.get("function_name"))
    assert by_message["order accepted"] == {"IntakeFunction"}, by_message
    assert by_message["provider order created"] == {"DispatcherFunction"}, by_message


# --- the local API's event shapes ---------------------------------------------------------------------


FORM = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "address": {"address1": "12 Analytical Row", "city": "London", "zip": "N1 9GU", "country": "GB"},
    "items": [{"sku": "TEE-BLUE-M", "quantity": 2}],
}


def test_the_same_order_through_the_rest_and_the_http_api_shapes(harness):
    system = harness.system
    apis = {
        shape: LocalApi(
            handler=system.intake.lambda_handler, function_name="IntakeFunction", shape=shape
        ).start()
        for shape in ("rest", "http")
    }
    try:
        body = dict(FORM, submission_id=f"shape-{uuid.uuid4().hex}")
        answers = {
            shape: requests.post(f"{api.url}/forms/fk_demo0001", json=body, timeout=30)
            for shape, api in apis.items()
        }
        assert {shape: a.status_code for shape, a in answers.items()} == {"rest": 202, "http": 202}
        rest, http = answers["rest"].json(), answers["http"].json()
        assert rest["tracking_id"] == http["tracking_id"]
        assert (rest["duplicate"], http["duplicate"]) == (False, True)
        tracking_id = rest["tracking_id"]
        # both APIs of the template answer under their stage, v1
        assert rest["status_url"] == http["status_url"] == f"/v1/orders/{tracking_id}"
        harness.drain(until=harness.final(tracking_id), timeout=WAIT)
        (record,) = harness.outcomes(tracking_id)
        assert record.status is OutcomeStatus.SUCCEEDED
        polled = {
            shape: requests.get(f"{api.url}{answers[shape].json()['status_url']}", timeout=30)
            for shape, api in apis.items()
        }
        assert polled["rest"].status_code == polled["http"].status_code == 200
        assert polled["rest"].json() == polled["http"].json()
    finally:
        for api in apis.values():
            api.shutdown()


def test_an_invocations_log_keys_win_over_another_functions_in_the_same_process(capsys):
    """Powertools keeps inject_lambda_context's keys once per process: the function that set them
    last would name every line. Inside `invocation`, the running function's own keys win."""
    from aws_lambda_powertools import Logger

    from orderbridge_local.lambda_runtime import LocalContext, invocation

    logger = Logger(service="orderbridge-local-test", logger_handler=logging.StreamHandler(sys.stdout))
    logger.append_keys(function_name="DispatcherFunction")  # what the other function left
    with invocation(LocalContext(function_name="IntakeFunction")):
        logger.info("inside")
    logger.info("outside")
    inside, outside = (json.loads(line) for line in capsys.readouterr().out.splitlines()[-2:])
    assert inside["function_name"] == "IntakeFunction" and inside["function_request_id"]
    assert outside["function_name"] == "DispatcherFunction"
