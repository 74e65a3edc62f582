"""The canonical model, the queue event and its published JSON Schema."""

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from orderbridge.identity import OrderIdentity, TrackingIds, differing_fields
from orderbridge.models.config import OrderbridgeConfig
from orderbridge.models.event import OrderEvent
from orderbridge.models.order import MAX_LINES, MAX_QUANTITY
from orderbridge.models.schema import order_event_schema
from tests.factories import ORDER, order

ROOT = Path(__file__).resolve().parents[1]


def test_published_schema_is_generated_from_the_model():
    published = json.loads((ROOT / "schemas" / "order-event.schema.json").read_text())
    assert published == json.loads(json.dumps(order_event_schema())), "run `make schema`"


def test_every_sqs_sample_matches_the_schema():
    import jsonschema

    schema = order_event_schema()
    for path in sorted((ROOT / "events").glob("sqs-*.json")):
        for record in json.loads(path.read_text())["Records"]:
            jsonschema.validate(json.loads(record["body"]), schema)


IDS = TrackingIds(key=lambda: b"test-key")


def _id(**kw: str) -> str:
    return IDS.tracking_id(
        OrderIdentity.of(shop=kw.pop("shop", "shop"), source=kw.pop("source", "erp"), **kw)
    )


def test_tracking_ids_are_derived_keyed_and_shaped():
    a = _id(external_order_id="1")
    assert a == _id(external_order_id="1") != _id(external_order_id="2")
    assert re.fullmatch(r"ob_[0-9a-f]{32}", a)
    # keyed: without the key nobody can compute an order's id from its number
    assert (
        TrackingIds(key=lambda: b"other-key").tracking_id(
            OrderIdentity.of(shop="shop", source="erp", external_order_id="1")
        )
        != a
    )
    # the separator keeps ("ab", "c") and ("a", "bc") apart
    assert _id(shop="ab", external_order_id="c") != _id(shop="a", external_order_id="bc")


def test_identity_prefers_the_shops_order_id_then_event_then_submission_then_body():
    both = OrderIdentity.of(shop="s", source="hook", external_order_id="9", event_id="evt", body=b"x")
    assert both == OrderIdentity("order", "s", "9")
    assert OrderIdentity.of(shop="s", source="hook", event_id="evt", body=b"x").kind == "event"
    form = OrderIdentity.of(shop="s", source="fk_1", submission_id="sub", form_key="fk_1", body=b"x")
    assert form == OrderIdentity("submission", "fk_1", "sub")
    assert OrderIdentity.of(shop="s", source="hook", body=b"x").kind == "body"
    with pytest.raises(ValueError):
        OrderIdentity.of(shop="s", source="hook")


def test_one_shop_two_sources_one_order():
    """A shop's webhook and its feed import name the same order when they share the shop."""
    assert _id(shop="acme", source="acme-webhook", external_order_id="1001") == _id(
        shop="acme", source="acme-feed", external_order_id="1001"
    )
    event = OrderEvent(
        source="acme-feed", shop="acme", route="default", order=order(external_order_id="1001")
    )
    assert event.resolved_tracking_id(IDS) == _id(shop="acme", external_order_id="1001")


def test_content_digests_name_the_field_that_differs():
    first = IDS.digests({"lines": [{"sku": "A", "quantity": 1}], "buyer": {"email": "a@example.com"}})
    again = IDS.digests({"buyer": {"email": "a@example.com"}, "lines": [{"sku": "A", "quantity": 1}]})
    changed = IDS.digests({"lines": [{"sku": "A", "quantity": 2}], "buyer": {"email": "a@example.com"}})
    assert differing_fields(first, again) == []
    assert differing_fields(first, changed) == ["lines"]


def test_event_without_tracking_id_needs_external_id():
    event = OrderEvent(source="erp", route="default", order=order(external_order_id=None))
    with pytest.raises(ValueError):
        event.resolved_tracking_id(IDS)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lines": []}, "lines"),
        ({"lines": [{"quantity": 1}]}, "lines.0"),
        ({"lines": [{"sku": "A", "quantity": 0}]}, "lines.0.quantity"),
        ({"lines": [{"sku": "A", "quantity": MAX_QUANTITY + 1}]}, "lines.0.quantity"),
        ({"lines": [{"sku": "A", "quantity": "1_0"}]}, "lines.0.quantity"),
        ({"lines": [{"sku": "A", "quantity": True}]}, "lines.0.quantity"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"buyer": {"email": "nope"}}, "buyer.email"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
        ({"metadata": {"k" * 41: "v"}}, "metadata.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk.[key]"),
        ({"total": "-1"}, "total"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_canonical_limits(changes, field):
    data = json.loads(json.dumps(ORDER)) | changes
    with pytest.raises(ValidationError) as err:
        from orderbridge.models.order import CanonicalOrder

        CanonicalOrder.model_validate(data)
    locs = {".".join(map(str, e["loc"])) for e in err.value.errors()}
    assert field in locs, locs


def test_limits_accept_their_edges():
    order(lines=[{"sku": "A", "quantity": MAX_QUANTITY}], metadata={f"k{i}": "v" * 500 for i in range(20)})
    order(lines=[{"sku": "A", "quantity": 1}] * MAX_LINES)  # a real Shopify order may hold hundreds


def test_local_configuration_is_valid_and_references_are_checked():
    text = (ROOT / "config" / "local.json").read_text().replace("${SANDBOX_URL}", "http://127.0.0.1:4010")
    config = json.loads(text)
    config.pop("local")  # the local run's block, never uploaded (orderbridge_local.setup)
    OrderbridgeConfig.model_validate(config)
    config["routes"]["default"]["destinations"][0]["destination"] = "ghost"
    with pytest.raises(ValidationError, match="unknown destination 'ghost'"):
        OrderbridgeConfig.model_validate(config)


def test_country_and_currency_codes_are_upper_cased_before_the_pattern():
    billing = dict(ORDER["billing_address"], country=" gb ")
    got = order(billing_address=billing, currency="eur")
    assert (got.billing_address.country, got.currency) == ("GB", "EUR")
    with pytest.raises(ValidationError):
        order(billing_address=dict(billing, country="g8"))


def test_order_state_reads_checking_while_an_order_may_exist():
    """A storefront is never told FAILED (or PENDING) for an order that may already exist."""
    from datetime import UTC, datetime, timedelta

    from orderbridge.models.outcome import OrderState, Outcome, OutcomeStatus, order_state

    now = datetime.now(UTC)

    def outcome(status: OutcomeStatus, **kw: object) -> Outcome:
        return Outcome(
            tracking_id="ob_" + "0" * 32, destination="d", status=status, created_at=now, updated_at=now, **kw
        )

    assert order_state([outcome(OutcomeStatus.SUCCEEDED)]) is OrderState.SUCCEEDED
    assert order_state([outcome(OutcomeStatus.NEEDS_REVIEW)]) is OrderState.CHECKING
    assert order_state([outcome(OutcomeStatus.DEAD_LETTERED, unknown_result=True)]) is OrderState.CHECKING
    assert order_state([outcome(OutcomeStatus.DEAD_LETTERED)]) is OrderState.FAILED
    # its worker died mid-delivery: the lease ran out, it may have been sent
    stale = outcome(OutcomeStatus.IN_FLIGHT, lease_until=now - timedelta(seconds=1))
    live = outcome(OutcomeStatus.IN_FLIGHT, lease_until=now + timedelta(seconds=60))
    assert order_state([stale]) is OrderState.CHECKING and order_state([live]) is OrderState.PENDING
    assert order_state([outcome(OutcomeStatus.SKIPPED)]) is OrderState.SKIPPED
