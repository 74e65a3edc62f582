"""Deliveries in doubt and stalled records, against the local system (moto's server, the sandboxes,
the real dispatcher and sweeper): `orderbridge review`, the DLQ redrive's short hold (a redrive
killed with SIGKILL in a subprocess), the sweeper function and `orderbridge sweep`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orderbridge import clients, constants
from orderbridge.models.outcome import OrderState, OutcomeStatus, order_state
from orderbridge.outcomes import OutcomeStore
from orderbridge.outcomes import store as store_module
from orderbridge_local.lambda_runtime import LocalContext
from orderbridge_local.system import load_function
from orderbridge_local.template_resources import load_template
from orderbridge_ops import cli, dlq
from tests.factories import ops_options, tracking_id_for

ROOT = Path(__file__).resolve().parents[1]
DESTINATIONS = {"default": ("bc-demo", "bigcommerce"), "komerza": ("komerza-demo", "komerza")}


def event(route: str = "default") -> tuple[str, str]:
    """A queue event for `route` and the tracking id the system derives for it."""
    ext = f"REV-{uuid.uuid4().hex[:10]}"
    order = {
        "external_order_id": ext,
        "buyer": {"email": "grace@example.com"},
        "billing_address": {
            "first_name": "Grace",
            "last_name": "Hopper",
            "address1": "1 Harvard Yard",
            "city": "Cambridge",
            "zip": "02138",
            "country": "US",
        },
        "lines": [{"sku": "MUG-001", "quantity": 1}],
    }
    return json.dumps({"source": "erp", "route": route, "order": order}), tracking_id_for("erp", ext)


def park(
    body: str,
    tracking_id: str,
    *,
    status: OutcomeStatus = OutcomeStatus.NEEDS_REVIEW,
    error_code: str = "NEEDS_REVIEW",
    unknown: bool = True,
    store: OutcomeStore | None = None,
) -> None:
    """Record a delivery that was claimed and ended as `status` (as the dispatcher would)."""
    from orderbridge import wiring

    store = store or wiring.outcome_store()
    event_ = json.loads(body)
    destination, provider = DESTINATIONS[event_["route"]]
    claim = store.claim(
        tracking_id=tracking_id,
        destination=destination,
        provider=provider,
        route=event_["route"],
        source="erp",
        external_order_id=event_["order"]["external_order_id"],
        lease_seconds=60,
    )
    store.finish(
        tracking_id=tracking_id,
        destination=destination,
        attempt=claim.attempt,
        status=status,
        error_code=error_code,
        error_message="the create timed out; nothing could confirm it",
        unknown_result=unknown,
        unknown_since=datetime.now(UTC) if unknown else None,
    )


def to_dlq(body: str, tracking_id: str, reason: str = "NEEDS_REVIEW", url: str | None = None) -> None:
    clients.client("sqs").send_message(
        QueueUrl=url or os.environ[constants.DEAD_LETTER_QUEUE_URL_ENV],
        MessageBody=body,
        MessageAttributes={
            "tracking_id": {"DataType": "String", "StringValue": tracking_id},
            "reason": {"DataType": "String", "StringValue": reason},
        },
    )


def options(harness, **override: str) -> list[str]:
    return ops_options(harness.system.state(), **override)


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def run(harness, capsys) -> Callable[..., tuple[int, str, str]]:
    def invoke(*args: str, **override: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main([*args, *options(harness, **override)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def line_with(text: str, needle: str) -> str:
    [line] = [line for line in text.splitlines() if needle in line]
    return line


# --- review list / resolve -------------------------------------------------------------------------


def test_review_list_shows_every_kind_of_doubt_and_where_to_look(run, harness):
    needs_review, legacy, dead, retrying, plain_dead = (event() for _ in range(5))
    komerza = event("komerza")
    park(*needs_review)
    park(*komerza)
    park(*legacy, status=OutcomeStatus.FAILED_PERMANENT, unknown=False)
    park(*dead, status=OutcomeStatus.DEAD_LETTERED, error_code="TIMEOUT")
    park(*retrying, status=OutcomeStatus.FAILED_RETRYABLE, error_code="ABANDONED")
    park(*plain_dead, status=OutcomeStatus.DEAD_LETTERED, error_code="HTTP_503", unknown=False)
    code, out, _ = run("review", "list")
    assert code == 0, out
    assert "NEEDS_REVIEW" in line_with(out, needs_review[1]) and "bigcommerce" in line_with(
        out, needs_review[1]
    )
    assert "komerza" in line_with(out, komerza[1])
    assert "FAILED_PERMANENT" in line_with(out, legacy[1]) and "review resolve" in line_with(out, legacy[1])
    assert "DEAD_LETTERED" in line_with(out, dead[1])
    assert "stopped mid-call" in line_with(out, retrying[1])
    assert plain_dead[1] not in out  # failed, but not in doubt: `retry` territory
    assert "external_order_id is the tracking id" in out  # where to look at BigCommerce
    assert "orderbridge_tracking_id" in out  # ... and at Komerza
    assert "CHECKING" in out
    for _, tid in (needs_review, komerza, legacy, dead, retrying):  # leave nothing in doubt behind
        code, out, _ = run(
            "review", "resolve", tid, "--created", "--provider-order-id", "1", "--by", "t", "--reason", "x"
        )
        assert code == 0, out


def test_resolved_as_created_succeeds_with_the_providers_id_and_sends_nothing(run, harness):
    body, tid = event()
    park(body, tid)
    to_dlq(body, tid)
    assert order_state(harness.outcomes(tid)) is OrderState.CHECKING
    code, out, _ = run(
        "review",
        "resolve",
        tid,
        "--created",
        "--provider-order-id",
        "BC-4242",
        "--by",
        "Ana Lima",
        "--reason",
        "order 4242 in the admin carries this external id",
    )
    assert code == 0, out
    assert "SUCCEEDED" in out and "never sent again" in out
    [outcome] = harness.outcomes(tid)
    assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.provider_order_id == "BC-4242"
    assert not outcome.unknown_result and outcome.error_code == "REVIEWED_CREATED"
    assert order_state([outcome]) is OrderState.SUCCEEDED
    code, out, _ = run("outcomes", "show", tid)
    assert code == 0 and "the storefront sees SUCCEEDED" in out
    history = out[out.index("history") :]
    assert "Ana Lima" in line_with(history, "REVIEWED_CREATED") and "order 4242 in the admin" in history
    # its DLQ copy is harmless now: redriven, the dispatcher finds the delivery finished
    code, out, _ = run("retry", tid)
    assert code == 0 and "redriven 1" in out
    harness.drain()
    assert harness.outcomes(tid)[0].status is OutcomeStatus.SUCCEEDED
    assert harness.orders_with_reference(tid) == []


def test_not_created_at_a_provider_without_lookup_is_sent_once_without_looking(run, harness):
    body, tid = event("komerza")
    park(body, tid)
    to_dlq(body, tid)
    code, out, _ = run("dlq", "redrive", "--id", tid, "--yes")
    assert code == 1 and "skipped 1" in out and "review resolve" in out
    code, out, _ = run(
        "review", "resolve", tid, "--not-created", "--by", "ops-bob", "--reason", "nothing in the dashboard"
    )
    assert code == 0, out
    assert "redriven 1, skipped 0, errors 0" in out
    harness.drain(until=harness.final(tid))
    [outcome] = harness.outcomes(tid)
    assert outcome.status is OutcomeStatus.SUCCEEDED, outcome
    assert [h.error_code for h in outcome.history if h.by == "ops-bob"] == ["REVIEWED_NOT_CREATED"]
    created = [o for o in harness.sandbox_orders("komerza") if tid in json.dumps(o)]
    assert len(created) == 1


def test_not_created_but_not_on_the_dlq_says_so_and_how_to_proceed(run, harness):
    body, tid = event()
    park(body, tid)
    code, out, _ = run("review", "resolve", tid, "--not-created", "--by", "ana", "--reason", "none there")
    assert code == 1
    assert "not on the dead-letter queue: nothing was sent" in out
    assert "send the event to the order queue again" in out
    [outcome] = harness.outcomes(tid)
    assert outcome.status is OutcomeStatus.FAILED_RETRYABLE and outcome.error_code == "REVIEWED_NOT_CREATED"
    assert not outcome.unknown_result  # doubt cleared: the next copy of the event is sent
    harness.send(body)
    harness.drain(until=harness.final(tid))
    assert harness.outcomes(tid)[0].status is OutcomeStatus.SUCCEEDED
    assert len(harness.orders_with_reference(tid)) == 1


def test_resolve_refuses_clearly(run, harness):
    body, tid = event()
    park(body, tid)
    done, done_tid = event()
    harness.send(done)
    harness.drain(until=harness.final(done_tid))
    resolve = ("review", "resolve")
    code, _, err = run(*resolve, done_tid, "--not-created", "--by", "a", "--reason", "r")
    assert code == 1 and "nothing to resolve: bc-demo SUCCEEDED" in err
    code, _, err = run(*resolve, tid, "--created", "--by", "a", "--reason", "r")
    assert code == 2 and "--created needs --provider-order-id" in err
    code, _, err = run(
        *resolve, tid, "--not-created", "--provider-order-id", "9", "--by", "a", "--reason", "r"
    )
    assert code == 2 and "goes with --created" in err
    code, _, err = run(*resolve, tid, "--not-created", "--by", " ", "--reason", "r")
    assert code == 2 and "--by and --reason" in err
    assert run(*resolve, tid, "--not-created", "--reason", "r")[0] == 2  # --by is required
    assert run(*resolve, tid, "--by", "a", "--reason", "r")[0] == 2  # created or not: say which
    code, _, err = run(
        *resolve, tid, "--destination", "nowhere", "--not-created", "--by", "a", "--reason", "r"
    )
    assert code == 1 and "has no destination 'nowhere'" in err
    code, _, err = run(*resolve, "ob_" + "e" * 32, "--not-created", "--by", "a", "--reason", "r")
    assert code == 1 and "no outcome recorded" in err
    assert "Traceback" not in err
    assert harness.outcomes(tid)[0].status is OutcomeStatus.NEEDS_REVIEW
    run(*resolve, tid, "--created", "--provider-order-id", "1", "--by", "t", "--reason", "cleanup")


# --- the DLQ redrive's hold ------------------------------------------------------------------------

# Runs the real CLI with two hooks: a short hold (so the test needs seconds, not the 30 s of
# REDRIVE_VISIBILITY) and a pause after each message (so it can be killed mid-way).
_SLOW_REDRIVE = """
import sys, time
from orderbridge_ops import cli, dlq
dlq.REDRIVE_VISIBILITY = int(sys.argv[1])
pause = float(sys.argv[2])
redrive_one = dlq.redrive_one
def slow(*args, **kwargs):
    result = redrive_one(*args, **kwargs)
    time.sleep(pause)
    return result
dlq.redrive_one = slow
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.fixture
def scratch_queues(harness) -> Iterator[tuple[str, str]]:
    """An order queue and a DLQ of this test's own: the harness's queues are left alone."""
    sqs = clients.client("sqs")
    name = f"ops-hold-{uuid.uuid4().hex[:8]}"
    urls = [sqs.create_queue(QueueName=f"{name}-{kind}")["QueueUrl"] for kind in ("queue", "dlq")]
    yield urls[0], urls[1]
    for url in urls:
        sqs.delete_queue(QueueUrl=url)


def visible(url: str) -> int:
    attrs = clients.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_a_killed_redrive_hands_its_messages_back_within_the_short_hold(run, harness, scratch_queues):
    assert dlq.REDRIVE_VISIBILITY <= 30  # the production bound
    queue, dead = scratch_queues
    # hold 5 s, renewed every 5/3 s: a renewal may be 3 s late on a busy machine and still hold
    total, hold, pause = 12, 5, 1.0
    for _ in range(total):
        to_dlq(*event(), url=dead)
    argv = ["dlq", "redrive", "--all", "--yes", *options(harness, queue_url=queue, dlq_url=dead)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_REDRIVE, str(hold), str(pause), *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: visible(queue) >= 1, 30, "the redrive sent its first message")
        time.sleep(hold + 1.5)  # past the visibility the messages were received with
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert visible(dead) == 0  # still held: their visibility was extended
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    sent = visible(queue)
    assert 1 <= sent < total

    def listed() -> bool:
        code, out, _ = run("dlq", "list", queue_url=queue, dlq_url=dead)
        found = re.search(r"(\d+) message\(s\) on the dead-letter queue", out)
        return code == 0 and found is not None and int(found.group(1)) >= total - sent

    waited = wait_for(listed, hold + 5, "dlq list sees the unsent messages again")
    assert waited <= hold + 5
    assert total - sent <= visible(dead) <= total - sent + 1  # one may have been sent and not yet deleted


def test_holder_releases_what_it_still_holds_on_exit(harness, scratch_queues):
    _, dead = scratch_queues
    for _ in range(3):
        to_dlq(*event(), url=dead)
    sqs = clients.client("sqs")
    with dlq.Holder(sqs, dead, visibility=6) as holder:
        letters = dlq.scan(sqs, dead, visibility=holder.visibility, holder=holder)
        assert len(letters) == 3 and visible(dead) == 0
        # longer than the visibility: the holder renews every 6/3 s, so a late renewal on a busy
        # machine still has 4 s to spare
        time.sleep(7.5)
        assert visible(dead) == 0
        sqs.delete_message(QueueUrl=dead, ReceiptHandle=letters[0].receipt_handle)
        holder.drop(letters[0])
    assert visible(dead) == 2  # released at once, not after their visibility


# --- the sweeper -----------------------------------------------------------------------------------


@pytest.fixture
def sweep_table(harness) -> Iterator[str]:
    """An outcome table of this test's own (the harness's, copied): a sweep with `now` in the future
    would otherwise mark every other test's records too."""
    ddb = clients.client("dynamodb")
    table = ddb.describe_table(TableName=harness.system.state()["outcome_table"])["Table"]
    name = f"sweep-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
            for g in table["GlobalSecondaryIndexes"]
        ],
    )
    yield name
    ddb.delete_table(TableName=name)


def received(store: OutcomeStore) -> str:
    tid = "ob_" + uuid.uuid4().hex
    store.record_received(
        tracking_id=tid,
        destinations=[("bc-demo", "bigcommerce")],
        source="erp",
        route="default",
        external_order_id=tid[3:13],
    )
    return tid


def in_flight(store: OutcomeStore, lease_seconds: int) -> str:
    tid = received(store)
    store.claim(
        tracking_id=tid,
        destination="bc-demo",
        provider="bigcommerce",
        route="default",
        source="erp",
        external_order_id=tid[3:13],
        lease_seconds=lease_seconds,
    )
    return tid


def test_sweep_marks_old_received_and_expired_in_flight_and_nothing_else(sweep_table):
    store = OutcomeStore(table_name=sweep_table, dynamodb_client=clients.client("dynamodb"))
    t0 = datetime.now(UTC)
    waiting, expiring, live = received(store), in_flight(store, 60), in_flight(store, 3600)
    bound = timedelta(minutes=30)

    marked = store.sweep(received_older_than=bound, now=t0 + timedelta(minutes=10))
    assert [o.tracking_id for o in marked] == [expiring]  # RECEIVED 10 min: fresh; lease 60 s: over
    [abandoned] = store.get(expiring)
    assert abandoned.status is OutcomeStatus.FAILED_RETRYABLE and abandoned.error_code == "ABANDONED"
    assert abandoned.unknown_result and abandoned.unknown_since is not None
    assert order_state([abandoned]) is OrderState.CHECKING  # it may have been sent
    assert store.get(waiting)[0].status is OutcomeStatus.RECEIVED

    marked = store.sweep(received_older_than=bound, now=t0 + timedelta(minutes=31))
    assert [o.tracking_id for o in marked] == [waiting]  # 31 min old; the 1 h lease still runs
    [not_started] = store.get(waiting)
    assert not_started.status is OutcomeStatus.FAILED_RETRYABLE and not_started.error_code == "NOT_STARTED"
    assert not not_started.unknown_result and order_state([not_started]) is OrderState.PENDING
    assert store.get(live)[0].status is OutcomeStatus.IN_FLIGHT
    # both stay claimable: if the event comes back, it is delivered (and the abandoned one looked up)
    claim = store.claim(
        tracking_id=expiring,
        destination="bc-demo",
        provider="bigcommerce",
        route="default",
        source="erp",
        external_order_id=expiring[3:13],
        lease_seconds=60,
    )
    assert claim.final is None and claim.may_exist


def written_at(when: datetime, monkeypatch, write: Callable[[], str]) -> str:
    """Write through OutcomeStore as if at `when` (the store's clock), then back to now."""
    with monkeypatch.context() as m:
        m.setattr(store_module, "_now", lambda: when)
        return write()


def test_the_sweeper_function_marks_stalled_records_logs_them_and_counts_them(
    sweep_table, monkeypatch, capsys, caplog
):
    store = OutcomeStore(table_name=sweep_table, dynamodb_client=clients.client("dynamodb"))
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    old = written_at(long_ago, monkeypatch, lambda: received(store))
    dead_worker = written_at(long_ago, monkeypatch, lambda: in_flight(store, 60))
    fresh, working = received(store), in_flight(store, 600)

    monkeypatch.setenv(constants.OUTCOME_TABLE_ENV, sweep_table)
    monkeypatch.setenv(constants.STALE_RECEIVED_SECONDS_ENV, "1800")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    sweeper = load_function("sweeper")
    scheduled = json.loads((ROOT / "events" / "scheduler-sweep.json").read_text())
    capsys.readouterr()
    result = sweeper.lambda_handler(scheduled, LocalContext(function_name="SweeperFunction"))
    output = capsys.readouterr().out

    assert result == {"marked": 2, "codes": {"NOT_STARTED": 1, "ABANDONED": 1}}
    assert store.get(old)[0].error_code == "NOT_STARTED"
    assert store.get(dead_worker)[0].error_code == "ABANDONED"
    assert store.get(fresh)[0].status is OutcomeStatus.RECEIVED
    assert store.get(working)[0].status is OutcomeStatus.IN_FLIGHT
    marked = {
        (r.tracking_id, r.destination, r.error_code) for r in caplog.records if hasattr(r, "tracking_id")
    }
    assert marked == {(old, "bc-demo", "NOT_STARTED"), (dead_worker, "bc-demo", "ABANDONED")}
    emitted = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    [emf] = [r for r in emitted if "_aws" in r]
    assert emf["StalledDeliveries"] in (2.0, [2.0])
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Orderbridge"


def test_sweep_command_dry_run_then_marks(run, sweep_table, monkeypatch):
    store = OutcomeStore(table_name=sweep_table, dynamodb_client=clients.client("dynamodb"))
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    old = written_at(long_ago, monkeypatch, lambda: received(store))
    dead_worker = written_at(long_ago, monkeypatch, lambda: in_flight(store, 60))
    fresh = received(store)

    code, out, _ = run("sweep", "--dry-run", table=sweep_table)
    assert code == 0 and "would mark 2 record(s)" in out and "Dry run" in out
    assert "NOT_STARTED" in line_with(out, old) and "ABANDONED" in line_with(out, dead_worker)
    assert fresh not in out
    assert store.get(old)[0].status is OutcomeStatus.RECEIVED  # nothing written
    code, out, _ = run("sweep", "--older-than", "3600", table=sweep_table)
    assert code == 0 and "marked 2 record(s)" in out
    assert "orderbridge retry TRACKING_ID" in out and "review list" in out
    assert store.get(old)[0].error_code == "NOT_STARTED"
    code, out, _ = run("sweep", table=sweep_table)
    assert code == 0 and "Nothing stalled" in out
    code, out, _ = run("review", "list", table=sweep_table)  # the abandoned one is in doubt
    assert dead_worker in out and old not in out
    assert run("sweep", "--older-than", "0", table=sweep_table)[0] == 2


def test_template_schedules_the_sweeper_every_5_minutes_with_least_privilege():
    template = load_template(ROOT / "template.yaml")
    resources = template["Resources"]
    function = resources["SweeperFunction"]["Properties"]
    assert function["CodeUri"] == "functions/sweeper/"
    assert function["Environment"]["Variables"][constants.STALE_RECEIVED_SECONDS_ENV] == str(
        constants.STALE_RECEIVED_SECONDS_DEFAULT
    )
    schedule = function["Events"]["SweepSchedule"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    sample = json.loads((ROOT / "events" / "scheduler-sweep.json").read_text())
    assert set(json.loads(schedule["Properties"]["Input"])) == set(sample)
    statements = [s for policy in function["Policies"] for s in policy["Statement"]]
    grants = {
        action: json.dumps(s["Resource"])
        for s in statements
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert set(grants) == {"dynamodb:Query", "dynamodb:UpdateItem"}  # no read: writes are conditional
    assert "index/by-status" in grants["dynamodb:Query"] and "index/*" not in grants["dynamodb:Query"]
    assert grants["dynamodb:UpdateItem"] == json.dumps({"Fn::GetAtt": ["OutcomeTable", "Arn"]})
    log_group = resources["SweeperLogGroup"]["Properties"]
    assert log_group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${SweeperFunction}"}
    names = list(resources)
    assert names.index("SweeperFunction") == names.index("ImporterLogGroup") + 1
