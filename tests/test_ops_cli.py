"""The operator CLI (`orderbridge`) in-process against the local system: moto's server, the real
dispatcher, the BigCommerce sandbox. Orders go through the pipeline; the CLI reads and redrives."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import pytest

from orderbridge.models.outcome import OutcomeStatus
from orderbridge_ops import cli, connect
from orderbridge_ops.outcomes import EXPORT_COLUMNS
from tests.factories import ops_options, queue_event

UNKNOWN_SKU = "OPS-SKU-1"


def _uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def run(harness, capsys):
    """Run the CLI with explicit connection options (after the command: they may go anywhere)."""
    options = ops_options(harness.system.state())

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main([*args, *options])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture(scope="module")
def ordered(harness) -> tuple[str, str]:
    """One order through the pipeline, SUCCEEDED: (tracking id, external order id)."""
    body, tracking_id = queue_event()
    harness.send(body)
    harness.drain(until=harness.final(tracking_id))
    assert harness.outcomes(tracking_id)[0].status is OutcomeStatus.SUCCEEDED
    return tracking_id, json.loads(body)["order"]["external_order_id"]


def send_to_dlq(harness, body: str, **attributes: str) -> None:
    from orderbridge import clients

    clients.client("sqs").send_message(
        QueueUrl=harness.system.dlq_url,
        MessageBody=body,
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )


def fixed_catalog(harness) -> dict[str, Any]:
    config = harness.system.local_config()
    config["routes"]["default"]["destinations"][0]["catalog"][UNKNOWN_SKU] = {"product_id": 112}
    return config


# --- help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["outcomes"],
        ["outcomes", "list"],
        ["outcomes", "show"],
        ["outcomes", "export"],
        ["dlq"],
        ["dlq", "list"],
        ["dlq", "redrive"],
        ["retry"],
        ["review"],
        ["review", "list"],
        ["review", "resolve"],
        ["sweep"],
    ],
    ids=lambda c: " ".join(c) or "orderbridge",
)
def test_help_works_for_every_command(command, capsys):
    assert cli.main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: orderbridge {' '.join(command)}".rstrip())
    assert "examples:\n  orderbridge " in out


def test_usage_errors_exit_2(capsys):
    assert cli.main(["outcomes", "list", "--status", "NOPE"]) == 2
    assert cli.main(["outcomes", "list", "--since", "yesterday-ish"]) == 2
    assert cli.main(["dlq", "redrive"]) == 2  # --all or --id is required
    assert "unknown status 'NOPE'" in capsys.readouterr().err


# --- outcomes ------------------------------------------------------------------------------------


def test_list_by_status_shows_an_order_from_the_pipeline(run, ordered):
    tracking_id, external_id = ordered
    code, out, _ = run("outcomes", "list", "--status", "succeeded", "--since", "1h")
    assert code == 0
    [line] = [line for line in out.splitlines() if tracking_id in line]
    assert "bc-demo" in line and "SUCCEEDED" in line
    code, out, _ = run("outcomes", "list", "--limit", "0")  # every status, one query per status
    assert code == 0 and tracking_id in out
    code, out, _ = run("outcomes", "list", "--status", "FAILED_PERMANENT", "--status", "DEAD_LETTERED")
    assert tracking_id not in out
    code, out, _ = run("outcomes", "list", "--source", "erp", "--external-id", external_id)
    assert code == 0 and tracking_id in out and "1 outcome(s)" in out
    code, out, _ = run("outcomes", "list", "--source", "erp", "--external-id", "ERP-none")
    assert code == 1 and "No outcomes match" in out
    code, _, err = run("outcomes", "list", "--external-id", external_id)
    assert code == 2 and "--external-id needs --source" in err


def test_show_prints_every_destination_and_its_history(run, ordered, harness):
    tracking_id, _ = ordered
    [outcome] = harness.outcomes(tracking_id)
    code, out, _ = run("outcomes", "show", tracking_id)
    assert code == 0
    assert tracking_id in out and "destination bc-demo" in out
    assert outcome.provider_order_id and outcome.provider_order_id in out
    history = out[out.index("history") :]
    assert "IN_FLIGHT" in history and "claimed" in history and "SUCCEEDED" in history and "200" in history
    code, _, err = run("outcomes", "show", "ob_" + "0" * 32)
    assert code == 1 and "no outcome recorded" in err and "Traceback" not in err


def test_export_csv_and_jsonl_parse_back(run, ordered, tmp_path):
    tracking_id, external_id = ordered
    code, out, _ = run("outcomes", "export", "--format", "csv", "--status", "SUCCEEDED", "--since", "1h")
    assert code == 0
    reader = csv.DictReader(io.StringIO(out))
    assert tuple(reader.fieldnames or ()) == EXPORT_COLUMNS
    [row] = [r for r in reader if r["tracking_id"] == tracking_id]
    assert row["status"] == "SUCCEEDED" and row["external_order_id"] == external_id and row["attempts"] == "1"
    target = tmp_path / "outcomes.jsonl"
    code, out, err = run("outcomes", "export", "--format", "jsonl", "--since", "1h", "--output", str(target))
    assert code == 0 and out == "" and "row(s) to" in err
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    [row] = [r for r in rows if r["tracking_id"] == tracking_id]
    assert list(row) == [*EXPORT_COLUMNS, "history"]
    assert row["status"] == "SUCCEEDED" and row["unknown_result"] is False
    assert [h["status"] for h in row["history"]][-1] == "SUCCEEDED"


# --- dead-letter queue ---------------------------------------------------------------------------


def test_parked_failures_are_listed_then_redriven_and_retried_after_a_fix(run, harness):
    harness.take_dead_letters()
    first, first_id = queue_event(lines=[{"sku": UNKNOWN_SKU, "quantity": 1}])
    second, second_id = queue_event(lines=[{"sku": UNKNOWN_SKU, "quantity": 2}])
    for body in (first, second):
        harness.send(body)
    harness.drain(until=lambda: harness.final(first_id)() and harness.final(second_id)())
    for tracking_id in (first_id, second_id):
        [outcome] = harness.outcomes(tracking_id)
        assert outcome.status is OutcomeStatus.FAILED_PERMANENT and outcome.error_code == "UNKNOWN_SKU"

    for _ in range(2):  # peeking consumes nothing
        code, out, _ = run("dlq", "list")
        assert code == 0
        for tracking_id in (first_id, second_id):
            [line] = [line for line in out.splitlines() if tracking_id in line]
            assert "FAILED_PERMANENT" in line
        assert "2 message(s) on the dead-letter queue" in out

    harness.system.upload_config(fixed_catalog(harness))
    try:
        code, out, _ = run("dlq", "redrive", "--id", first_id, "--yes")
        assert code == 0, out
        assert "redriven 1, skipped 0, errors 0" in out and "reopened bc-demo" in out
        code, out, _ = run("dlq", "list")  # the other one stays, visible
        assert second_id in out and first_id not in out
        code, out, _ = run("retry", second_id, "--destination", "bc-demo")
        assert code == 0 and "redriven 1" in out
        harness.drain(until=lambda: harness.final(first_id)() and harness.final(second_id)())
    finally:
        harness.system.upload_config()
    for tracking_id in (first_id, second_id):
        [outcome] = harness.outcomes(tracking_id)
        assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.attempts == 2
        assert len(harness.orders_with_reference(tracking_id)) == 1
    assert harness.take_dead_letters() == []


def test_redrive_all_derives_tracking_ids_and_skips_malformed_bodies(run, harness):
    harness.take_dead_letters()
    body, tracking_id = queue_event()  # as SQS's redrive moves it: no attributes
    send_to_dlq(harness, body)
    send_to_dlq(harness, "{not json", tracking_id="msg_ops-test", reason="MALFORMED_EVENT")
    code, out, _ = run("dlq", "list")
    assert code == 0
    [line] = [line for line in out.splitlines() if tracking_id in line]
    assert "SQS redrive" in line
    [line] = [line for line in out.splitlines() if "msg_ops-test" in line]
    assert "MALFORMED_EVENT" in line
    code, out, _ = run("dlq", "redrive", "--all", "--yes")
    assert code == 1  # partly: the malformed one is left for a person
    assert "redriven 1, skipped 1, errors 0" in out
    harness.drain(until=harness.final(tracking_id))
    assert harness.outcomes(tracking_id)[0].status is OutcomeStatus.SUCCEEDED
    [left] = harness.take_dead_letters()
    assert left["Body"] == "{not json"


@pytest.mark.parametrize("parked", ["legacy FAILED_PERMANENT", "NEEDS_REVIEW"])
def test_needs_review_is_not_redriven_until_resolved_as_not_created(run, harness, parked):
    """Parked for review the old way (FAILED_PERMANENT / NEEDS_REVIEW) or the new (status
    NEEDS_REVIEW): redrive and retry refuse, point to `review resolve`, and leave it on the DLQ;
    resolved as not created, it is redriven and sent once."""
    from orderbridge import wiring

    harness.take_dead_letters()
    body, tracking_id = queue_event()
    store = wiring.outcome_store()
    external_id = json.loads(body)["order"]["external_order_id"]
    claim = store.claim(
        tracking_id=tracking_id,
        destination="bc-demo",
        provider="bigcommerce",
        route="default",
        source="erp",
        external_order_id=external_id,
        lease_seconds=60,
    )
    legacy = parked.startswith("legacy")
    store.finish(
        tracking_id=tracking_id,
        destination="bc-demo",
        attempt=claim.attempt,
        status=OutcomeStatus.FAILED_PERMANENT if legacy else OutcomeStatus.NEEDS_REVIEW,
        error_code="NEEDS_REVIEW",
        error_message="an earlier attempt may have created the order",
        unknown_result=not legacy,
    )
    status = harness.outcomes(tracking_id)[0].status
    send_to_dlq(
        harness, body, tracking_id=tracking_id, reason="FAILED_PERMANENT" if legacy else "NEEDS_REVIEW"
    )
    code, out, _ = run("dlq", "redrive", "--all", "--yes")
    assert code == 1 and "redriven 0, skipped 1" in out and "review resolve" in out
    code, out, _ = run("retry", tracking_id)
    assert code == 1 and "redriven 0, skipped 1" in out and "review resolve" in out
    code, _, err = run("retry", tracking_id, "--reviewed")
    assert code == 2 and "--reviewed is no longer accepted" in err and "review resolve" in err
    code, _, err = run("retry", tracking_id, "--reopen-only")
    assert code == 1 and "review resolve" in err
    assert harness.outcomes(tracking_id)[0].status is status  # untouched by every refusal
    code, out, _ = run("dlq", "list")
    assert tracking_id in out  # still there, visible
    code, out, _ = run(
        "review", "resolve", tracking_id, "--not-created", "--by", "ana", "--reason", "none in the admin"
    )
    assert code == 0, out
    assert "redriven 1" in out
    harness.drain(until=harness.final(tracking_id))
    [outcome] = harness.outcomes(tracking_id)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert [(h.by, h.note) for h in outcome.history if h.by] == [("ana", "none in the admin")]
    assert len(harness.orders_with_reference(tracking_id)) == 1
    assert harness.take_dead_letters() == []


def test_retry_of_an_order_not_on_the_dlq_exits_1_and_says_what_to_do(run, ordered):
    tracking_id, _ = ordered
    code, out, err = run("retry", tracking_id)
    assert code == 1 and err == ""
    assert "not on the dead-letter queue" in out and "nothing to retry" in out
    code, out, _ = run("retry", tracking_id, "--reopen-only")
    assert code == 1 and "Nothing to reopen" in out
    code, _, err = run("retry", tracking_id, "--destination", "nowhere")
    assert code == 1 and "has no destination 'nowhere'" in err
    code, out, _ = run("retry", "ob_" + "f" * 32)
    assert code == 1 and "No outcome is recorded" in out
    code, _, err = run("dlq", "redrive", "--id", "ob_" + "f" * 32, "--yes")
    assert code == 1


# --- connecting ----------------------------------------------------------------------------------


def test_local_state_file_is_found_in_the_current_directory(harness, ordered, tmp_path, monkeypatch, capsys):
    tracking_id, _ = ordered
    (tmp_path / connect.STATE_FILE_NAME).write_text(json.dumps(harness.system.state()))
    monkeypatch.chdir(tmp_path)
    for name in ("OUTCOME_TABLE", "ORDER_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["--local", "outcomes", "show", tracking_id]) == 0
    assert tracking_id in capsys.readouterr().out
    assert cli.main(["dlq", "list", "--local"]) == 0


def test_nothing_resolves_exits_2_with_a_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(connect, "REPO_ROOT", tmp_path)
    for name in ("OUTCOME_TABLE", "ORDER_QUEUE_URL", "DEAD_LETTER_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["outcomes", "list"]) == 2
    err = capsys.readouterr().err
    assert "no outcome table configured" in err and "--stack-name" in err and "Traceback" not in err
    assert cli.main(["--local", "dlq", "list"]) == 2
    assert "orderbridge-local up" in capsys.readouterr().err


def test_stack_outputs_come_after_explicit_options_and_before_the_environment():
    class FakeCloudFormation:
        calls = 0

        def describe_stacks(self, StackName):
            self.calls += 1
            assert StackName == "orderbridge-prod"
            outputs = {
                "OutcomeTableName": "table-from-stack",
                "OrderQueueUrl": "https://sqs/queue-from-stack",
            }
            return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}]}

    environ = {"OUTCOME_TABLE": "t-env", "ORDER_QUEUE_URL": "q-env", "DEAD_LETTER_QUEUE_URL": "dlq-env"}
    target = connect.Target(region="eu-west-1", stack_name="orderbridge-prod", table="explicit-table")
    conn = connect.Connection(target, environ=environ)
    fake = FakeCloudFormation()
    conn._clients["cloudformation"] = fake
    assert conn.table == "explicit-table"
    assert conn.queue_url == "https://sqs/queue-from-stack"
    assert conn.dlq_url == "dlq-env"  # the stack has no such output: next in line
    assert fake.calls == 1


def test_scan_handles_a_message_received_twice_once_with_its_newest_receipt_handle():
    from orderbridge_ops import dlq

    def message(message_id: str, handle: str) -> dict[str, Any]:
        body, _ = queue_event()
        return {"MessageId": message_id, "ReceiptHandle": handle, "Body": body, "Attributes": {}}

    class FakeSqs:
        def __init__(self) -> None:
            self.batches = [[message("m1", "h1"), message("m2", "h2")], [message("m1", "h3")]]
            self.released: list[str] = []

        def get_queue_attributes(self, **_):
            return {"Attributes": {"ApproximateNumberOfMessages": "2"}}

        def receive_message(self, **_):
            return {"Messages": self.batches.pop(0)} if self.batches else {}

        def change_message_visibility_batch(self, QueueUrl, Entries):
            assert all(e["VisibilityTimeout"] == 0 for e in Entries)
            self.released += [e["ReceiptHandle"] for e in Entries]
            return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    sqs = FakeSqs()
    from orderbridge.identity import TrackingIds

    letters = dlq.scan(sqs, "https://sqs/dlq", visibility=5, ids=TrackingIds(key=lambda: b"k"))
    assert [(letter.message_id, letter.receipt_handle) for letter in letters] == [("m1", "h3"), ("m2", "h2")]
    assert all(letter.tracking_id and letter.reason == dlq.SQS_REDRIVE_REASON for letter in letters)
    assert dlq.release(sqs, "https://sqs/dlq", letters) == 0
    assert sqs.released == ["h3", "h2"]
