"""The order's one state for the storefront (`order_state`), its copies (OpenAPI, page, script),
the operator guidance for deliveries in doubt, and a mixed outcome through the local system."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orderbridge.models.outcome import (
    ORDER_STATE_MEANING,
    HistoryEntry,
    OrderState,
    Outcome,
    OutcomeStatus,
    order_state,
)
from orderbridge.storefront import pages
from orderbridge_ops.guidance import guidance
from tests.factories import tracking_id_for

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
S = OutcomeStatus

# One delivery's situation, by name: (status, unknown_result, lease_until, error_code).
KINDS: dict[str, tuple[OutcomeStatus, bool, datetime | None, str | None]] = {
    "succeeded": (S.SUCCEEDED, False, None, None),
    "failed_permanent": (S.FAILED_PERMANENT, False, None, "HTTP_422"),
    "dead_lettered": (S.DEAD_LETTERED, False, None, "HTTP_503"),
    "dead_lettered_unknown": (S.DEAD_LETTERED, True, None, "TIMEOUT"),
    "skipped": (S.SKIPPED, False, None, "TEST_ORDER"),
    "in_flight": (S.IN_FLIGHT, False, NOW + timedelta(seconds=60), None),
    "in_flight_expired": (S.IN_FLIGHT, False, NOW - timedelta(seconds=1), None),
    "retrying": (S.FAILED_RETRYABLE, False, None, "HTTP_503"),
    "retrying_unknown": (S.FAILED_RETRYABLE, True, None, "ABANDONED"),
    "needs_review": (S.NEEDS_REVIEW, True, None, "NEEDS_REVIEW"),
    "legacy_review": (S.FAILED_PERMANENT, False, None, "NEEDS_REVIEW"),
    "received": (S.RECEIVED, False, None, None),
}
IN_DOUBT = {"dead_lettered_unknown", "in_flight_expired", "retrying_unknown", "needs_review", "legacy_review"}
ON_ITS_WAY = {"in_flight", "retrying", "received"}
FAILED = {"failed_permanent", "dead_lettered"}


def outcome(kind: str, destination: str = "d1", **extra: object) -> Outcome:
    status, unknown, lease, code = KINDS[kind]
    return Outcome(
        tracking_id="ob_" + "0" * 32,
        destination=destination,
        status=status,
        unknown_result=unknown,
        lease_until=lease,
        error_code=code,
        created_at=NOW,
        updated_at=NOW,
        **extra,
    )


def expected(kinds: tuple[str, ...]) -> OrderState:
    """The rule, written out the long way: what the buyer may be told about these deliveries."""
    found = set(kinds)
    if found & IN_DOUBT:
        return OrderState.CHECKING
    if found & ON_ITS_WAY:
        return OrderState.PENDING  # even beside a failure: another destination may still get it
    if found == {"skipped"}:
        return OrderState.SKIPPED
    if found & FAILED:
        return OrderState.PARTIAL if "succeeded" in found else OrderState.FAILED
    return OrderState.SUCCEEDED


SINGLE = {
    "succeeded": OrderState.SUCCEEDED,
    "failed_permanent": OrderState.FAILED,
    "dead_lettered": OrderState.FAILED,
    "dead_lettered_unknown": OrderState.CHECKING,
    "skipped": OrderState.SKIPPED,
    "in_flight": OrderState.PENDING,
    "in_flight_expired": OrderState.CHECKING,
    "retrying": OrderState.PENDING,
    "retrying_unknown": OrderState.CHECKING,
    "needs_review": OrderState.CHECKING,
    "legacy_review": OrderState.CHECKING,
    "received": OrderState.PENDING,
}

# Two destinations, hand-written: the cases the newcomer met and their neighbours.
PAIRS = [
    (("succeeded", "failed_permanent"), OrderState.PARTIAL),  # BigCommerce 103, Lana refused
    (("succeeded", "dead_lettered"), OrderState.PARTIAL),
    (("succeeded", "succeeded"), OrderState.SUCCEEDED),
    (("succeeded", "skipped"), OrderState.SUCCEEDED),
    (("failed_permanent", "skipped"), OrderState.FAILED),
    (("failed_permanent", "dead_lettered"), OrderState.FAILED),
    (("failed_permanent", "in_flight"), OrderState.PENDING),
    (("failed_permanent", "received"), OrderState.PENDING),
    (("failed_permanent", "retrying"), OrderState.PENDING),
    (("succeeded", "in_flight"), OrderState.PENDING),
    (("succeeded", "in_flight_expired"), OrderState.CHECKING),
    (("succeeded", "needs_review"), OrderState.CHECKING),
    (("failed_permanent", "needs_review"), OrderState.CHECKING),
    (("failed_permanent", "retrying_unknown"), OrderState.CHECKING),
    (("dead_lettered", "dead_lettered_unknown"), OrderState.CHECKING),
    (("skipped", "skipped"), OrderState.SKIPPED),
]


@pytest.mark.parametrize(("kind", "state"), sorted(SINGLE.items()))
def test_one_destination(kind, state):
    assert order_state([outcome(kind)], now=NOW) is state


@pytest.mark.parametrize(("kinds", "state"), PAIRS, ids=["+".join(k) for k, _ in PAIRS])
def test_two_destinations(kinds, state):
    outcomes = [outcome(kind, f"d{i}") for i, kind in enumerate(kinds)]
    assert order_state(outcomes, now=NOW) is state
    assert order_state(list(reversed(outcomes)), now=NOW) is state


def test_every_pair_and_triple_follows_the_rule():
    """Every combination of two and three destinations: never FAILED where one has the order."""
    names = sorted(KINDS)
    combos = [(a, b) for a in names for b in names] + [(a, b, c) for a in names for b in names for c in names]
    for kinds in combos:
        state = order_state([outcome(k, f"d{i}") for i, k in enumerate(kinds)], now=NOW)
        assert state is expected(kinds), kinds
        if "succeeded" in kinds:
            assert state is not OrderState.FAILED, kinds


def test_no_outcome_yet_is_pending():
    assert order_state([], now=NOW) is OrderState.PENDING


# --- the copies of the rule --------------------------------------------------------------------


def test_every_state_has_a_meaning_a_page_text_and_a_script_text():
    assert set(ORDER_STATE_MEANING) == set(OrderState) == set(pages.STATE_TEXT)
    script = (ROOT / "layers/orderbridge/orderbridge/storefront/static/orderbridge-form.js").read_text()
    strings = {json.loads(s) for s in re.findall(r'"(?:[^"\\\n]|\\.)*"', script)}
    for state, text in pages.STATE_TEXT.items():
        assert text in strings, f"{state}: the script's TEXT differs from pages.STATE_TEXT"
        assert f'data.status === "{state}"' in script or state is OrderState.PENDING


def test_openapi_describes_every_state_from_the_one_declaration():
    document = json.loads((ROOT / "openapi/intake.openapi.json").read_text())
    schemas = document["components"]["schemas"]
    assert schemas["OrderState"]["enum"] == [s.value for s in OrderState]
    description = schemas["StatusBody"]["properties"]["status"]["description"]
    for state, meaning in ORDER_STATE_MEANING.items():
        assert f"{state.value}: {meaning}." in description


def test_readme_lists_every_state():
    readme = (ROOT / "README.md").read_text()
    assert '"status": "' + "|".join(
        ["PENDING", "SUCCEEDED", "CHECKING", "PARTIAL", "FAILED", "SKIPPED"]
    ) in readme and set(OrderState) == {"PENDING", "SUCCEEDED", "CHECKING", "PARTIAL", "FAILED", "SKIPPED"}
    assert "Idempotency table" not in readme and "72 hours" not in readme


def test_partial_confirmation_page_says_received_and_stops_refreshing():
    status = {"status": "PARTIAL", "destinations": []}
    page = pages.render_confirmation(
        form_key="fk", root="/", tracking_id="ob_" + "1" * 32, status=status, poll_seconds=5
    )
    assert "Order received" in page and "do not order again" in page and "http-equiv" not in page
    assert "could not place" not in page


# --- operator guidance ---------------------------------------------------------------------------


def advice(kind: str, *, now: datetime = NOW, timeout: int | None = 360, **extra: object):
    return guidance(
        outcome(kind, provider="lana", **extra), tracking_id="ob_x", now=now, visibility_timeout=timeout
    )


def test_guidance_for_an_abandoned_delivery_says_in_progress_and_when():
    claimed = NOW - timedelta(seconds=30)
    history = [HistoryEntry(at=claimed, status=S.IN_FLIGHT, attempt=1)]
    told = advice("retrying_unknown", history=history)
    assert "still in progress" in told.step and "2026-12-01 12:05:30 UTC" in told.step
    assert "review resolve" not in told.text and not told.needs_person
    assert "looks the order up" in told.text
    unknown_when = advice("retrying_unknown", history=history, timeout=None)
    assert "at the queue's visibility timeout" in unknown_when.step
    late = advice("retrying_unknown", history=history, now=NOW + timedelta(minutes=10))
    assert "not taken up again by 2026-12-01 12:05:30 UTC" in late.step and "retry" in late.step


def test_guidance_for_the_dlq_and_for_review():
    dead = advice("dead_lettered_unknown")
    assert dead.step.startswith("on the DLQ: retry") and "orderbridge retry ob_x" in dead.text
    for kind in ("needs_review", "legacy_review"):
        told = advice(kind)
        assert told.needs_person and "review resolve ob_x --destination d1" in told.text
        assert "retry" not in told.text


# --- through the local system ------------------------------------------------------------------


def erp_order(ext: str) -> dict[str, object]:
    """A canonical order in USD for one MUG-001, as another system puts it on the queue."""
    return {
        "external_order_id": ext,
        "currency": "USD",
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


def test_created_at_one_destination_and_refused_at_the_other_reads_partial(harness):
    """A route to BigCommerce and to a Lana shop that takes EUR only; a USD order: BigCommerce
    creates it, Lana refuses it for good. The status says PARTIAL, never FAILED."""
    document = harness.system.local_config()
    document["destinations"]["lana-eur"] = json.loads(json.dumps(document["destinations"]["lana-demo"]))
    document["destinations"]["lana-eur"]["settings"]["currencies"] = ["EUR"]
    lana_catalog = document["routes"]["lana"]["destinations"][0]["catalog"]
    document["routes"]["split"] = {
        "destinations": [
            json.loads(json.dumps(document["routes"]["default"]["destinations"][0])),
            {"destination": "lana-eur", "catalog": lana_catalog},
        ]
    }
    harness.system.upload_config(document)
    try:
        ext = f"SPLIT-{uuid.uuid4().hex[:10]}"
        tid = tracking_id_for("erp", ext)
        harness.send(json.dumps({"source": "erp", "route": "split", "order": erp_order(ext)}))
        harness.drain(until=harness.final(tid))
        by_destination = {o.destination: o for o in harness.outcomes(tid)}
        assert by_destination["bc-demo"].status is S.SUCCEEDED
        assert by_destination["lana-eur"].status is S.FAILED_PERMANENT
        answer = harness.get(f"/orders/{tid}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "PARTIAL"
        assert {d["destination"]: d["status"] for d in body["destinations"]} == {
            "bc-demo": "SUCCEEDED",
            "lana-eur": "FAILED_PERMANENT",
        }
    finally:
        harness.system.upload_config()


def test_a_delivery_found_by_lookup_says_so_in_its_history(harness):
    """The connection drops after BigCommerce created the order: the next attempt finds it by the
    tracking id and records SUCCEEDED with a note that it was found, not sent again."""
    from orderbridge.dispatch.dispatcher import FOUND_BY_LOOKUP_NOTE

    harness.fault("bigcommerce", "drop_after_create", count=1)
    ext = f"FOUND-{uuid.uuid4().hex[:10]}"
    tid = tracking_id_for("erp", ext)
    harness.send(json.dumps({"source": "erp", "route": "default", "order": erp_order(ext)}))
    harness.drain(until=harness.final(tid))
    [record] = harness.outcomes(tid)
    assert record.status is S.SUCCEEDED and record.attempts == 2
    assert record.history[-1].status is S.SUCCEEDED and record.history[-1].note == FOUND_BY_LOOKUP_NOTE
    assert len(harness.orders_with_reference(tid)) == 1
