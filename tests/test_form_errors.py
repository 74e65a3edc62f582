"""A form's errors name each field as its sender named it, through the running local system.

JSON posts get dotted names (`address.province`, `items.2.quantity`), urlencoded posts bracketed
ones (`address[province]`, `items[2][quantity]`), with the sender's own item index: the form
script shows each error next to its field. Covered: provider rules found by the form's dry run
(`RequestRejectedError.field`), the catalog's UNKNOWN_ITEM, model validation, malformed bodies
(a name sent twice, `items=3` next to `items[0][...]`) and country codes that do not exist.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from orderbridge.intake import mapping

DEMO = "/forms/fk_demo0001"  # BigCommerce, priced items TEE-BLUE-M, TEE-BLUE-L, MUG-001
JSON_TYPE = {"Content-Type": "application/json"}
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}
STYLES = ("json", "urlencoded")


def order(**changes: Any) -> dict[str, Any]:
    """A valid form post as nested fields (the JSON shape; `flatten` gives the urlencoded one)."""
    fields: dict[str, Any] = {
        "submission_id": uuid.uuid4().hex,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address": {"address1": "Hauptstr. 1", "city": "Berlin", "zip": "10115", "country": "DE"},
        "items": [{"sku": "TEE-BLUE-M", "quantity": 1}],
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def flatten(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """Nested fields as a form posts them: `address[city]`, `items[<index>][sku]`."""
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]" if prefix else str(k), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        else:
            out.append((prefix, str(value)))

    walk("", fields)
    return out


def send(harness: Any, path: str, fields: dict[str, Any], style: str) -> Any:
    if style == "json":
        return harness.post(path, json.dumps(fields), JSON_TYPE)
    return harness.post(path, urlencode(flatten(fields)), FORM_TYPE)


def name(style: str, *parts: str) -> str:
    """The field name a sender of `style` uses: ("address", "zip") -> address.zip / address[zip]."""
    head, *rest = parts
    return ".".join(parts) if style == "json" else head + "".join(f"[{p}]" for p in rest)


def refusal(r: Any, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()["error"]


def named(error: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["field"], f["code"]) for f in error["fields"]}


@pytest.fixture(scope="module")
def lana_form(harness: Any) -> Iterator[str]:
    """A form on the `lana` route (Lana wants a province and a name on every shipping address;
    the route has no priced items, so its catalog decides which SKUs exist)."""
    key = f"fk_lana{uuid.uuid4().hex[:8]}"
    document = harness.system.local_config()
    demo = document["forms"]["fk_demo0001"]
    document["forms"][key] = {
        "route": "lana",
        "source": "lana-form",
        "allowed_origins": demo["allowed_origins"],
        "rate_limit": demo["rate_limit"],
    }
    harness.system.upload_config(document)
    yield f"/forms/{key}"
    harness.system.upload_config()


# --- 1. provider rules name the sender's field ------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("country", ["DE", "AT"])
def test_a_missing_province_is_named_at_the_province_field(harness, lana_form, style, country):
    address = {"address1": "Hauptstr. 1", "city": "Wien", "zip": "1010", "country": country}
    error = refusal(send(harness, lana_form, order(address=address), style))
    assert error["code"] == "VALIDATION_FAILED"
    assert named(error) == {(name(style, "address", "province"), "ADDRESS_PROVINCE_REQUIRED")}
    assert "order" not in {f["field"] for f in error["fields"]}


@pytest.mark.parametrize("style", STYLES)
def test_a_missing_name_is_named_at_the_first_name_field(harness, lana_form, style):
    address = {"address1": "Hauptstr. 1", "city": "Berlin", "province": "BE", "zip": "10115", "country": "DE"}
    error = refusal(send(harness, lana_form, order(first_name=None, last_name=None, address=address), style))
    assert named(error) == {("first_name", "ADDRESS_NAME_REQUIRED")}


@pytest.mark.parametrize("style", STYLES)
def test_a_zip_bigcommerce_needs_is_named_at_the_zip_field(harness, style):
    address = {"address1": "12 Row", "city": "London", "country": "GB"}
    error = refusal(send(harness, DEMO, order(address=address), style))
    assert named(error) == {(name(style, "address", "zip"), "ZIP_REQUIRED")}


@pytest.mark.parametrize("style", STYLES)
def test_a_sku_the_providers_catalog_lacks_is_named_at_its_own_row(harness, lana_form, style):
    """Row 2 (row 1 has no SKU, so it is no line): the error names row 2, not line 1."""
    items = [{"sku": "TEE-BLUE-M", "quantity": 1}, {"quantity": 1}, {"sku": "NOT-AT-LANA", "quantity": 1}]
    address = {"address1": "Hauptstr. 1", "city": "Berlin", "province": "BE", "zip": "10115", "country": "DE"}
    error = refusal(send(harness, lana_form, order(items=items, address=address), style))
    assert named(error) == {(name(style, "items", "2", "sku"), "UNKNOWN_SKU")}


# --- 2. the sender's own item index; malformed bodies -------------------------------------------


def test_urlencoded_errors_use_the_senders_index_however_large(harness):
    rows = [
        ("items[0][sku]", "SOCK-RED"),
        ("items[0][quantity]", "1"),
        ("items[99999999][sku]", "X"),
        ("items[99999999][quantity]", "1"),
    ]
    body = urlencode([*flatten(order(items=None)), *rows])
    error = refusal(harness.post(DEMO, body, FORM_TYPE))
    assert named(error) == {("items[0][sku]", "UNKNOWN_ITEM"), ("items[99999999][sku]", "UNKNOWN_ITEM")}


@pytest.mark.parametrize("style", STYLES)
def test_a_line_error_names_the_row_it_was_posted_in(harness, style):
    items = [{"quantity": 3}, {"sku": "MUG-001", "quantity": 1}, {}, {"sku": "TEE-BLUE-L", "quantity": 0}]
    error = refusal(send(harness, DEMO, order(items=items), style))
    assert named(error) == {(name(style, "items", "3", "quantity"), "greater_than_equal")}


@pytest.mark.parametrize("style", STYLES)
def test_an_unknown_item_names_the_row_it_was_posted_in(harness, style):
    items = [{"quantity": 3}, {"sku": "MUG-001", "quantity": 1}, {"sku": "SOCK-RED", "quantity": 1}]
    error = refusal(send(harness, DEMO, order(items=items), style))
    assert named(error) == {(name(style, "items", "2", "sku"), "UNKNOWN_ITEM")}


@pytest.mark.parametrize("items_first", [True, False])
def test_urlencoded_items_as_a_value_and_a_group_is_malformed(harness, items_first):
    pairs = flatten(order(items=None))
    rows = [("items[0][sku]", "MUG-001"), ("items[0][quantity]", "1")]
    pairs += [("items", "3"), *rows] if items_first else [*rows, ("items", "3")]
    error = refusal(harness.post(DEMO, urlencode(pairs), FORM_TYPE), 400)
    assert error["code"] == "MALFORMED_BODY" and "'items" in error["message"], error
    assert named(error) == {("items", "ambiguous_field")}  # in `fields` too: shown in place


def test_json_items_that_are_no_list_are_named_as_such(harness):
    error = refusal(send(harness, DEMO, order(items=3), "json"))
    assert named(error) == {("items", "list_type")}


@pytest.mark.parametrize(
    ("style", "address"),
    [("json", "Domplatz 1, Koeln"), ("json", 5), ("json", ["Domplatz 1"]), ("urlencoded", "Domplatz 1")],
)
def test_an_address_that_is_no_address_object_is_refused_not_dropped(harness, lana_form, style, address):
    """A buyer's address in the wrong shape was dropped and the order sent without one (Lana,
    unlike BigCommerce, takes an order with no address, so nothing else stopped it)."""
    error = refusal(send(harness, lana_form, order(address=address), style))
    assert [f["field"] for f in error["fields"]] == ["address"], error


@pytest.mark.parametrize("style", STYLES)
def test_a_name_sent_twice_is_malformed(harness, style):
    if style == "json":
        body = json.dumps(order())[:-1] + ', "email": "eve@example.com"}'
        r = harness.post(DEMO, body, JSON_TYPE)
        twice = "'email'"
    else:
        pairs = [*flatten(order()), ("items[0][sku]", "MUG-001")]
        r = harness.post(DEMO, urlencode(pairs), FORM_TYPE)
        twice = "'items[0][sku]'"
    error = refusal(r, 400)
    assert error["code"] == "MALFORMED_BODY" and twice in error["message"], error
    assert named(error) == {(twice.strip("'"), "ambiguous_field")}  # in `fields` too: shown in place


# --- 3. country codes that exist ----------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_a_country_code_that_does_not_exist_is_refused_at_the_country_field(harness, style):
    address = {"address1": "1 Nowhere", "city": "Nowhere", "zip": "12345", "country": "ZZ"}
    error = refusal(send(harness, DEMO, order(address=address), style))
    # one error for the one form field (it is both the billing and the shipping address)
    assert [(f["field"], f["code"]) for f in error["fields"]] == [
        (name(style, "address", "country"), "country_invalid")
    ]


@pytest.mark.parametrize("style", STYLES)
def test_a_real_country_in_lower_case_is_taken(harness, style):
    address = {"address1": "12 Row", "city": "London", "zip": "N1 9GU", "country": "gb"}
    r = send(harness, DEMO, order(address=address), style)
    assert r.status_code == 202, r.text


# --- the rules themselves -----------------------------------------------------------------------


def test_canonical_paths_are_named_in_each_senders_terms():
    fields = {"items": {"4": {"sku": "A"}, "0": {"quantity": "1"}, "12": {"name": "B"}}}
    form = mapping.FormFieldNames.of(fields, urlencoded=True)
    body = mapping.FormFieldNames.of({"items": [{}, {"sku": "A"}, {"name": "B"}]}, urlencoded=False)
    cases = {
        "buyer.email": ("email", "email"),
        "shipping_address.province": ("address[province]", "address.province"),
        "billing_address.last_name": ("last_name", "last_name"),
        "billing_address": ("address", "address"),
        "lines": ("items", "items"),
        "lines.1.quantity": ("items[12][quantity]", "items.2.quantity"),
        "lines.0": ("items[4]", "items.1"),
        "currency": ("currency", "currency"),
        "<body>": ("<body>", "<body>"),
    }
    assert {path: (form(path), body(path)) for path in cases} == cases


def test_the_urlencoded_parser_refuses_ambiguous_names():
    assert mapping.parse_urlencoded("a[b]=1&a[c]=2") == {"a": {"b": "1", "c": "2"}}
    for body, named_in_message in [
        ("items[0][sku]=A&items[0][sku]=B", "'items[0][sku]'"),
        ("items[0][sku]=A&items[0][sku]=A", "'items[0][sku]'"),
        ("items=3&items[0][sku]=A", "'items'"),
        ("items[0][sku]=A&items=3", "'items'"),
        ("a[b]=1&a[b][c]=2", "'a[b]'"),
    ]:
        with pytest.raises(ValueError, match=named_in_message.replace("[", r"\[")):
            mapping.parse_urlencoded(body)
