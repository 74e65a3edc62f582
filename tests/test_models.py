"""The canonical model, the queue event and its published JSON Schema."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from orderbridge.models.config import OrderbridgeConfig
from orderbridge.models.event import OrderEvent, derived_tracking_id, new_tracking_id
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


def test_tracking_ids():
    a, b = new_tracking_id(), new_tracking_id()
    assert a != b and a.startswith("ob_") and len(a) == 35
    assert (
        derived_tracking_id("erp", "1") == derived_tracking_id("erp", "1") != derived_tracking_id("erp", "2")
    )
    # the separator keeps ("a:b", "c") and ("a", "b:c") apart
    assert derived_tracking_id("ab", "c") != derived_tracking_id("a", "bc")


def test_event_without_tracking_id_needs_external_id():
    event = OrderEvent(source="erp", route="default", order=order(external_order_id=None))
    with pytest.raises(ValueError):
        event.resolved_tracking_id()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lines": []}, "lines"),
        ({"lines": [{"quantity": 1}]}, "lines.0"),
        ({"lines": [{"sku": "A", "quantity": 0}]}, "lines.0.quantity"),
        ({"lines": [{"sku": "A", "quantity": 10001}]}, "lines.0.quantity"),
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
    order(lines=[{"sku": "A", "quantity": 10000}], metadata={f"k{i}": "v" * 500 for i in range(20)})
    order(lines=[{"sku": "A", "quantity": 1}] * 100)


def test_local_configuration_is_valid_and_references_are_checked():
    text = (ROOT / "config" / "local.json").read_text().replace("${SANDBOX_URL}", "http://127.0.0.1:4010")
    config = json.loads(text)
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
