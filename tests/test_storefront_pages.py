"""The storefront form without a browser: pages, the plain HTML post (no script), escaping, assets."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

import pycountry
import requests

from orderbridge.models.order import MAX_LINES, MAX_QUANTITY, Buyer
from orderbridge.storefront import pages
from orderbridge.storefront.limits import field_limits
from orderbridge.storefront.web import api_root, public_base

FORM = "/forms/fk_demo0001"
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}


VOID = {"input", "br", "img", "meta", "link", "hr"}


class Fields(HTMLParser):
    """Every form control's attributes, by name; and the text of elements by id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.controls: dict[str, dict[str, str | None]] = {}
        self.labels: dict[str, str] = {}
        self.ids: set[str] = set()
        self.text: dict[str, str] = {}  # element id -> its text
        self.options: dict[str, list[tuple[str, str, bool]]] = {}  # select name -> (value, text, selected)
        self._label_for: str | None = None
        self._open: list[str] = []
        self._select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
            self.text[str(a["id"])] = ""
        if tag not in VOID:
            self._open.append(str(a["id"]) if a.get("id") else "")
        if tag in ("input", "textarea", "select") and a.get("name"):
            self.controls.setdefault(str(a["name"]), a)
        if tag == "select":
            self._select = str(a.get("name"))
            self.options[self._select] = []
        if tag == "option" and self._select:
            self.options[self._select].append((str(a.get("value")), "", "selected" in a))
        if tag == "label":
            self._label_for = a.get("for")

    def handle_data(self, data: str) -> None:
        if self._label_for:
            self.labels[self._label_for] = self.labels.get(self._label_for, "") + data
        for open_id in filter(None, self._open):
            self.text[open_id] += data
        if self._select and self.options[self._select]:
            value, text, selected = self.options[self._select][-1]
            self.options[self._select][-1] = (value, text + data, selected)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None
        if tag == "select":
            self._select = None
        if tag not in VOID and self._open:
            self._open.pop()


def total_of(html: str) -> str:
    """The running total as the server rendered it."""
    found = re.search(r"data-ob-total>Total: <output[^>]*><span [^>]*>([^<]+)</span></output>", html)
    assert found, "no total on the page"
    return found.group(1)


def valid(**changes: str) -> dict[str, str]:
    data = {
        "submission_id": uuid.uuid4().hex,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address[address1]": "12 Row",
        "address[city]": "London",
        "address[zip]": "N1 9GU",
        "address[country]": "GB",
        "items[1][sku]": "TEE-BLUE-L",
        "items[1][quantity]": "2",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def post(harness, data: dict[str, str], form: str = FORM, **headers: str) -> requests.Response:
    return requests.post(
        f"{harness.api}{form}/submit",
        data=urlencode(data),
        headers={**URLENCODED, **headers},
        allow_redirects=False,
        timeout=30,
    )


# --- the page ------------------------------------------------------------------------------------


def test_form_page_has_labelled_fields_the_catalog_and_the_models_limits(harness):
    r = harness.get(FORM)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    page = Fields(r.text)
    # every visible control has a label, and its error slot is what describes it
    for name, attrs in page.controls.items():
        if attrs.get("type") in ("hidden",):
            continue
        assert attrs.get("id") in page.labels, name
        if attrs.get("aria-describedby"):
            assert set(attrs["aria-describedby"].split()) <= page.ids
    # the route's priced items, as ticked-or-not rows (RETIRED-001 is in the catalog, not sold)
    skus = [a["value"] for n, a in page.controls.items() if re.fullmatch(r"items\[\d+\]\[sku\]", n)]
    assert skus == ["TEE-BLUE-M", "TEE-BLUE-L", "MUG-001"]
    # limits come from the model
    assert page.controls["items[0][quantity]"]["max"] == str(MAX_QUANTITY)
    assert page.controls["items[0][quantity]"]["min"] == "1"
    assert f'data-max-lines="{MAX_LINES}"' in r.text
    assert page.controls["first_name"]["maxlength"] == "255"
    assert page.controls["address[zip]"]["maxlength"] == "20"
    assert page.controls["email"]["type"] == "email"
    assert ("required" in page.controls["email"]) == Buyer.model_fields["email"].is_required()
    assert "required" in page.controls["address[country]"] and "required" in page.controls["address[city]"]
    # one submission id per rendered page, and a honeypot
    first, second = page.controls["submission_id"]["value"], Fields(harness.get(FORM).text)
    assert first and first != second.controls["submission_id"]["value"]
    assert page.controls["website"]["tabindex"] == "-1"


def test_form_page_shows_the_servers_names_prices_total_and_a_country_list(harness):
    page = Fields(harness.get(FORM).text)
    rows = {n: a for n, a in page.controls.items() if re.fullmatch(r"items\[\d+\]\[sku\]", n)}
    shown = [(a["value"], page.labels[str(a["id"])], page.text[f"{a['id']}-price"]) for a in rows.values()]
    assert shown == [
        ("TEE-BLUE-M", "Blue tee, size M", "15.00 USD"),
        ("TEE-BLUE-L", "Blue tee, size L", "15.00 USD"),
        ("MUG-001", "Mug", "12.50 USD"),
    ]
    # the price is part of what describes each item's checkbox; nothing on the page is a price field
    for a in rows.values():
        assert f"{a['id']}-price" in str(a["aria-describedby"]).split()
    assert not [n for n in page.controls if re.search(r"price|currency|total", n)]
    assert total_of(harness.get(FORM).text) == "0.00 USD"
    # countries: a select of every ISO 3166-1 code, by name, with an empty first choice
    assert page.controls["address[country]"]["autocomplete"] == "country"
    options = page.options["address[country]"]
    assert options[0][:2] == ("", "Choose a country") and not any(o[2] for o in options)
    assert {v for v, _, _ in options[1:]} == {c.alpha_2 for c in pycountry.countries}
    names = dict((v, t) for v, t, _ in options)
    assert names["GB"] == "United Kingdom" and names["BO"] == "Bolivia" and names["US"] == "United States"
    assert page.labels[str(page.controls["address[country]"]["id"])].startswith("Country")
    # the Komerza form's route is priced too
    komerza = Fields(harness.get("/forms/fk_komerza01").text)
    assert "12.50 USD" in komerza.text.values()


def test_server_side_rendering_of_prices_and_totals():
    items = [
        pages.Item(sku="A", label="A", price=Decimal("1500"), currency="JPY"),
        pages.Item(sku="B", label="B", price=Decimal("0.125"), currency="JPY"),
    ]
    assert pages.format_money(Decimal("1234.5"), "USD") == "1,234.50 USD"
    assert pages.format_money(Decimal("1500"), "JPY") == "1,500 JPY"
    assert pages.format_money(Decimal("1.5"), "KWD") == "1.500 KWD"
    values = {"items": {"0": {"sku": "A", "quantity": "3"}, "1": {"quantity": "9"}}}
    html = pages.render_form(
        form_key="fk_x", base="./", items=items[:1], state=pages.FormState(values=values)
    )
    assert 'data-ob-amount="4500" data-ob-currency="JPY">4,500 JPY</span>' in html  # the chosen rows only
    unpriced = pages.render_form(form_key="fk_x", base="./", items=[pages.Item(sku="A", label="A")])
    assert "data-ob-total" not in unpriced and "data-ob-price" not in unpriced


def test_unknown_form_key_is_a_404_page(harness):
    r = harness.get("/forms/fk_nosuchform")
    assert r.status_code == 404 and "No such order form" in r.text


def test_limits_follow_the_model():
    limits = field_limits()
    assert limits["quantity"] == {"required": True, "min": 1, "max": MAX_QUANTITY}
    assert limits["notes"]["maxlength"] == 5000 and not limits["notes"]["required"]
    assert limits["address[address1]"]["required"] and not limits["address[address2]"]["required"]


# --- the plain HTML post -------------------------------------------------------------------------


def test_plain_post_gets_a_303_to_the_confirmation_page_which_refreshes_until_created(harness):
    r = post(harness, valid())
    assert r.status_code == 303, r.text
    location = urljoin(f"{harness.api}{FORM}/submit", r.headers["Location"])
    assert location.startswith(f"{harness.api}{FORM}/confirmation/ob_")
    # no PII in URLs: the location is the tracking id and nothing else (a bare "ada" would also
    # match the id's own hex digits now and then)
    assert re.fullmatch(r"confirmation/ob_[0-9a-f]{32}", r.headers["Location"]), r.headers["Location"]
    assert not [v for v in ("ada@", "lovelace", "12 row", "london") if v in r.headers["Location"].lower()]
    tracking_id = location.rsplit("/", 1)[1]
    pending = requests.get(location, timeout=10)
    assert pending.status_code == 200
    assert '<meta http-equiv="refresh"' in pending.text and tracking_id in pending.text
    harness.drain(until=harness.final(tracking_id))
    done = requests.get(location, timeout=10)
    assert "Your order has been created." in done.text and "http-equiv" not in done.text
    [created] = harness.orders_with_reference(tracking_id)
    # at the server's price (the route's items), never one from the post
    [product] = created["request"]["products"]
    assert (product["product_id"], product["variant_id"], product["quantity"]) == (111, 78, 2)
    assert Decimal(str(product["price_ex_tax"])) == Decimal(str(product["price_inc_tax"])) == 15
    # the form's own status poll answers the same as /orders/{id}
    status = harness.get(f"{FORM}/orders/{tracking_id}").json()
    assert status == harness.get(f"/orders/{tracking_id}").json()


def test_plain_post_with_errors_gets_the_form_again_with_values_and_errors_in_place(harness):
    data = valid(email="not-an-email", **{"address[zip]": "1" * 21})
    data.pop("items[1][sku]")
    data |= {"items[2][sku]": "MUG-001", "items[2][quantity]": "0"}
    r = post(harness, data)
    assert r.status_code == 422
    page = Fields(r.text)
    assert page.controls["email"]["value"] == "not-an-email"
    assert page.controls["email"]["aria-invalid"] == "true" and "autofocus" in page.controls["email"]
    assert page.controls["address[zip]"]["aria-invalid"] == "true"
    assert (
        page.controls["address[city]"]["value"] == "London"
        and "aria-invalid" not in page.controls["address[city]"]
    )
    # the error of the first (and only) line is shown on the row it came from: MUG-001's quantity
    assert page.controls["items[2][quantity]"]["aria-invalid"] == "true"
    assert "checked" in page.controls["items[2][sku]"] and "checked" not in page.controls["items[1][sku]"]
    errors = dict(re.findall(r'data-ob-error-for="([^"]+)">([^<]+)</p>', r.text))
    assert set(errors) == {"email", "address[zip]", "items[2][quantity]"}
    assert 'role="alert"' in r.text and "Quantity of Mug" in r.text
    # the same submission id is kept, so fixing and resending stays one order
    assert page.controls["submission_id"]["value"] == data["submission_id"]


def test_plain_post_keeps_the_chosen_country_and_shows_the_total_of_the_chosen_items(harness):
    data = valid(email="not-an-email", **{"address[country]": "FR", "items[2][sku]": "MUG-001"})
    data["items[2][quantity]"] = "3"
    r = post(harness, data)
    assert r.status_code == 422
    page = Fields(r.text)
    assert [v for v, _, selected in page.options["address[country]"] if selected] == ["FR"]
    assert total_of(r.text) == "67.50 USD"


def test_plain_post_of_an_item_not_sold_here_is_refused_at_the_items(harness):
    """A tampered SKU (RETIRED-001 is in the catalog, not in the route's items) gets UNKNOWN_ITEM."""
    r = post(harness, valid(**{"items[1][sku]": "RETIRED-001"}), Accept="application/json")
    assert r.status_code == 422, r.text
    [error] = r.json()["error"]["fields"]
    assert (error["field"], error["code"]) == ("items[1][sku]", "UNKNOWN_ITEM")  # the row as posted
    page = post(harness, valid(**{"items[1][sku]": "RETIRED-001"}))
    errors = dict(re.findall(r'data-ob-error-for="([^"]+)">([^<]+)</p>', page.text))
    assert errors == {"items[1][sku]": "RETIRED-001 is not sold here; choose an item from the list."}
    assert Fields(page.text).controls["items[1][sku]"]["aria-invalid"] == "true"


def test_plain_post_with_no_item_says_so_at_the_items(harness):
    data = valid()
    data.pop("items[1][sku]")
    r = post(harness, data)
    assert r.status_code == 422
    assert 'data-ob-error-for="items">Choose at least one item.</p>' in r.text


def test_reflected_values_are_escaped(harness):
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    r = post(harness, valid(email=evil, first_name=evil, notes="</textarea><script>alert(3)</script>"))
    assert r.status_code == 422
    assert "<script>alert" not in r.text and "<img" not in r.text
    page = Fields(r.text)
    assert page.controls["first_name"]["value"] == evil  # kept, as text
    assert "&lt;/textarea&gt;&lt;script&gt;alert(3)" in r.text


def test_a_value_cannot_break_out_of_the_rendered_markup():
    evil = "\"'><b>x</b>&amp;"
    html = pages.render_form(
        form_key="fk_demo0001",
        base='"><b>',
        items=[pages.Item(sku=evil, label=evil)],
        state=pages.FormState(values={"coupon": evil}, errors={"coupon": evil}, general=[evil]),
        submission_id=evil,
    )
    assert "<b>" not in html
    parsed = Fields(html)
    assert parsed.controls["coupon"]["value"] == evil and parsed.controls["submission_id"]["value"] == evil


def test_honeypot_and_wrong_origin_are_refused_on_the_page(harness):
    r = post(harness, valid(website="http://spam.example"))
    assert r.status_code == 422 and "the submission was rejected" in r.text
    assert Fields(r.text).controls["website"]["value"] == ""  # never echoed back
    r = post(harness, valid(), Origin="http://evil.example")
    assert r.status_code == 403 and "does not accept posts from that origin" in r.text


def test_the_page_posting_to_itself_is_same_origin(harness):
    r = post(harness, valid(), Origin=harness.api)
    assert r.status_code == 303
    harness.drain()


def test_script_gets_json_answers_with_cors_even_for_errors(harness):
    origin = "http://localhost:8000"  # an allowed origin of fk_demo0001
    r = post(harness, valid(email="nope"), Accept="application/json", Origin=origin)
    assert r.status_code == 422 and r.headers["Access-Control-Allow-Origin"] == origin
    assert r.json()["error"]["fields"][0]["field"] == "email"
    r = post(harness, valid(), Accept="application/json", Origin=origin)
    assert r.status_code == 202 and r.headers["Access-Control-Allow-Origin"] == origin
    tracking_id = r.json()["tracking_id"]
    status = harness.get(f"{FORM}/orders/{tracking_id}", headers={"Origin": origin})
    assert status.status_code == 200 and status.headers["Access-Control-Allow-Origin"] == origin
    # another form's key does not see this form's orders
    assert harness.get(f"/forms/fk_komerza01/orders/{tracking_id}").status_code == 404
    assert harness.get(f"/forms/fk_komerza01/confirmation/{tracking_id}").status_code == 404
    harness.drain(until=harness.final(tracking_id))


def test_a_scripts_post_under_the_stage_gets_a_status_url_under_the_stage(harness):
    """The JSON answer's status_url is where the client can poll: under `/v1` when the post came
    by the default endpoint's stage, as every other way in answers."""
    origin = "http://localhost:8000"
    r = requests.post(
        f"{harness.api}/v1{FORM}/submit",
        data=urlencode(valid()),
        headers={**URLENCODED, "Accept": "application/json", "Origin": origin},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    tracking_id = r.json()["tracking_id"]
    assert r.json()["status_url"] == f"/v1/orders/{tracking_id}"
    assert harness.get(r.json()["status_url"]).status_code == 200
    harness.drain(until=harness.final(tracking_id))


# --- snippet and assets --------------------------------------------------------------------------


def test_snippet_has_absolute_urls_and_no_fixed_submission_id(harness):
    r = harness.get(f"{FORM}/embed")
    assert r.status_code == 200
    assert f'action="{harness.api}/forms/fk_demo0001/submit"' in r.text
    assert f'src="{harness.api}/storefront/orderbridge-form.js"' in r.text
    assert Fields(r.text).controls["submission_id"]["value"] == ""
    assert harness.get("/forms/fk_nosuchform/embed").status_code == 404


def test_assets_are_served_and_nothing_else(harness):
    js = harness.get("/storefront/orderbridge-form.js")
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert "data-orderbridge-form" in js.text
    css = harness.get("/storefront/orderbridge-form.css")
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert harness.get("/storefront/..%2Fweb.py").status_code == 404
    assert harness.get("/storefront/pages.py").status_code == 404


def test_urls_are_relative_to_the_api_root_whatever_the_stage():
    assert api_root("/forms/fk_demo0001") == "../"
    assert api_root("/forms/fk_demo0001/confirmation/ob_1") == "../../../"
    host = {"Host": "abc.execute-api.eu-west-1.amazonaws.com", "X-Forwarded-Proto": "https"}
    base = public_base(host, "/forms/fk/embed", "/v1/forms/fk/embed")
    assert base == "https://abc.execute-api.eu-west-1.amazonaws.com/v1/"
    assert (
        public_base({"Host": "127.0.0.1:3000"}, "/forms/fk/embed", "/v1/forms/fk/embed")
        == "http://127.0.0.1:3000/"
    )
