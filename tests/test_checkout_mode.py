"""Checkout-mode forms (Komerza): the order is created while the buyer waits and the answer
sends the buyer to the provider's hosted checkout; a slow or failing provider falls back to 202."""

from __future__ import annotations

import json
import uuid

import requests

from orderbridge.models.outcome import OutcomeStatus
from tests.factories import form_post

FORM = "/forms/fk_komerza01"


body = form_post  # a new buyer's post to the Komerza checkout form


def test_fetch_post_answers_with_the_checkout_url(harness):
    r = harness.post(FORM, json.dumps(body()), {"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["redirect_url"].startswith(f"{harness.sandbox}/komerza/checkout/")
    page = requests.get(answer["redirect_url"], timeout=10)
    assert page.status_code == 200 and "Komerza sandbox checkout" in page.text
    [outcome] = harness.outcomes(answer["tracking_id"])
    assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.redirect_url == answer["redirect_url"]
    # the queued copy of the event finds the delivery done: still one order
    harness.drain()
    orders = [
        o
        for o in harness.sandbox_orders("komerza")
        if o["request"]["metadata"]["orderbridge_tracking_id"] == answer["tracking_id"]
    ]
    assert len(orders) == 1


def test_plain_html_form_gets_a_303_to_the_checkout(harness):
    form = (
        f"submission_id={uuid.uuid4().hex}&email=ada%40example.com&first_name=Ada&last_name=Lovelace"
        "&address%5Baddress1%5D=12+Row&address%5Bcity%5D=London&address%5Bzip%5D=N1+9GU"
        "&address%5Bcountry%5D=GB&items%5B0%5D%5Bsku%5D=MUG-001&items%5B0%5D%5Bquantity%5D=2"
    )
    r = requests.post(
        harness.api + FORM,
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 303
    assert r.headers["Location"].startswith(f"{harness.sandbox}/komerza/checkout/")
    harness.drain()


def test_double_click_gets_the_same_checkout_and_one_order(harness):
    data = json.dumps(body())
    first = harness.post(FORM, data, {"Content-Type": "application/json"}).json()
    second = harness.post(FORM, data, {"Content-Type": "application/json"}).json()
    assert first["tracking_id"] == second["tracking_id"] and second["duplicate"] is True
    assert first["redirect_url"] == second["redirect_url"]
    harness.drain()
    orders = [
        o
        for o in harness.sandbox_orders("komerza")
        if o["request"]["metadata"]["orderbridge_tracking_id"] == first["tracking_id"]
    ]
    assert len(orders) == 1


def test_failing_provider_falls_back_to_the_queue(harness):
    harness.fault("komerza", "error_500", count=1)
    r = harness.post(FORM, json.dumps(body()), {"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    tracking_id = r.json()["tracking_id"]
    harness.drain(until=harness.final(tracking_id))
    status = harness.get(f"/orders/{tracking_id}").json()
    assert status["status"] == "SUCCEEDED"
    assert status["destinations"][0]["redirect_url"].startswith(f"{harness.sandbox}/komerza/checkout/")
