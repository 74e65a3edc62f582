"""The storefront form in a real browser: Debian's headless chromium, driven by Playwright.

Against the local run (the session `harness`): a valid order is created on the sandbox and the
confirmation follows it; bad input shows its errors in place; a double click is one order (with
and without the script); the snippet works embedded on a shop's page on another origin; a Komerza
route ends on the sandbox's checkout page; the page shows the server's prices and a running total,
works on a 375 px wide phone, and a price or currency slipped into the post changes nothing.
Screenshots of each state go to tests/artifacts/.
"""

from __future__ import annotations

import copy
import os
import re
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium keeps calling home, which is closed here.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FORM = "/forms/fk_demo0001"
KOMERZA = "/forms/fk_komerza01"
WAIT_MS = 20_000  # upper bound for a state to appear; nothing asserts how long it took
# The route's items as config/local.json sells them: SKU -> (name on the page, price)
NAMES = {"TEE-BLUE-M": "Blue tee, size M", "TEE-BLUE-L": "Blue tee, size L", "MUG-001": "Mug"}
PHONE = {"width": 375, "height": 800}


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser tests (.ci/run installs chromium)", pytrace=False)
    pytest.skip(f"{reason} (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is missing")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 900, "height": 1400})
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def plain_page(browser: Any) -> Iterator[Any]:
    """A browser with scripting off: the form must work as plain HTML."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 900, "height": 1400})
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"storefront-{name}.png"), full_page=True)


def fill(page: Any, email: str, sku: str = "TEE-BLUE-M", quantity: str = "2", country: str = "GB") -> None:
    """Fill the form by its labels, as a buyer (or a screen reader) finds the fields."""
    field(page, "Email").fill(email)
    field(page, "First name").fill("Ada")
    field(page, "Last name").fill("Lovelace")
    field(page, "Street address").fill("12 Row")
    field(page, "City").fill("London")
    field(page, "Postal code").fill("N1 9GU")
    field(page, "Country").select_option(country)
    field(page, NAMES[sku]).check()
    field(page, f"Quantity of {NAMES[sku]}").fill(quantity)


def field(page: Any, label: str) -> Any:
    """The control labelled `label` (a required field's label ends with an asterisk)."""
    return page.get_by_label(re.compile("^" + re.escape(label) + r"( \*)?$"))


def products(created: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(product id, variant id, quantity, price ex tax, price inc tax) of what BigCommerce received;
    prices as Decimal, whether the adapter wrote them as JSON numbers or strings."""
    return [
        (
            p["product_id"],
            p.get("variant_id"),
            p["quantity"],
            Decimal(str(p.get("price_ex_tax"))),
            Decimal(str(p.get("price_inc_tax"))),
        )
        for p in created["request"]["products"]
    ]


def unique_email() -> str:
    return f"buyer-{uuid.uuid4().hex[:12]}@example.com"


def bigcommerce_orders_for(harness: Any, email: str) -> list[dict[str, Any]]:
    return [o for o in harness.sandbox_orders() if o["request"]["billing_address"].get("email") == email]


# --- a valid order ---------------------------------------------------------------------------------


def test_valid_order_is_created_and_the_confirmation_follows_it(harness, page):
    from playwright.sync_api import expect

    page.goto(harness.api + FORM)
    expect(page.get_by_role("heading", name="Place your order")).to_be_visible()
    shot(page, "01-empty-form")
    email = unique_email()
    fill(page, email)
    held: list[Any] = []  # hold the post to see the submitting state
    page.route("**/forms/fk_demo0001/submit", lambda route: held.append(route))
    button = page.get_by_role("button", name="Place order")
    button.click()
    expect(button).to_be_disabled()
    expect(button).to_have_attribute("aria-busy", "true")
    expect(page.locator(".ob-spinner")).to_be_visible()
    expect(page.locator("[data-ob-status]")).to_have_text("Placing your order\u2026")
    shot(page, "03-submitting")
    for _ in range(WAIT_MS // 50):  # the route handler runs while playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the form never posted"
    held[0].continue_()
    panel = page.locator("[data-ob-confirmation]")
    expect(panel).to_have_attribute("data-ob-state", "PENDING")
    expect(page.get_by_role("heading", name="Order received")).to_be_focused()
    shot(page, "04-confirmation-pending")
    tracking_id = page.locator(".ob-reference").inner_text()
    harness.drain(until=harness.final(tracking_id))
    expect(panel).to_have_attribute("data-ob-state", "SUCCEEDED")
    expect(panel.get_by_role("status")).to_have_text("Your order has been created.")
    shot(page, "05-confirmation-created")
    [created] = harness.orders_with_reference(tracking_id)
    assert created["request"]["billing_address"]["email"] == email
    assert created["request"]["billing_address"]["country_iso2"] == "GB"
    assert products(created) == [(111, 77, 2, Decimal(15), Decimal(15))]  # the route's price


# --- bad input -------------------------------------------------------------------------------------


def test_bad_input_shows_errors_next_to_fields_and_focuses_the_first(harness, page):
    from playwright.sync_api import expect

    page.goto(harness.api + FORM)
    email = field(page, "Email")
    email.fill("not-an-email")
    page.get_by_role("button", name="Place order").click()
    # the browser-side checks, from the limits the page carries
    expect(email).to_be_focused()
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-ob-error-for="email"]')).to_have_text("Enter a valid email address.")
    expect(page.locator('[data-ob-error-for="address[country]"]')).to_have_text("This field is required.")
    expect(field(page, "Country")).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-ob-error-for="items"]')).to_have_text("Choose at least one item.")
    expect(page.locator('[data-ob-error-for="address[city]"]')).to_have_text("This field is required.")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("There is a problem with your order")
    expect(alert).to_contain_text("Email: Enter a valid email address.")
    shot(page, "02-field-errors")
    # the summary's links take the keyboard to the field
    alert.get_by_role("link", name="Items: Choose at least one item.").click()
    expect(field(page, NAMES["TEE-BLUE-M"])).to_be_focused()


def test_server_errors_are_shown_in_place_using_the_keyboard_only(harness, page):
    """A value only the server rejects (no dot in the email's domain) comes back next to its field."""
    from playwright.sync_api import expect

    page.goto(harness.api + FORM)
    page.keyboard.press("Tab")  # the first stop is the first field
    expect(field(page, "Email")).to_be_focused()
    page.keyboard.type("ada@example")
    fill_rest = {
        "First name": "Ada",
        "Last name": "Lovelace",
        "Street address": "12 Row",
        "City": "London",
        "Postal code": "N1 9GU",
    }
    for label, value in fill_rest.items():
        field(page, label).focus()
        page.keyboard.type(value)
    field(page, "Country").focus()
    page.keyboard.type("United Kingdom")  # a select's type-ahead, as a keyboard user picks
    expect(field(page, "Country")).to_have_value("GB")
    field(page, NAMES["MUG-001"]).focus()
    page.keyboard.press("Space")
    field(page, "City").focus()
    page.keyboard.press("Enter")  # implicit submission
    email = field(page, "Email")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-ob-error-for="email"]')).to_contain_text("not a valid email address")
    expect(email).to_be_focused()
    expect(page.get_by_role("button", name="Place order")).to_be_enabled()
    shot(page, "02b-server-field-errors")


def test_without_the_script_errors_come_back_on_the_form(harness, plain_page):
    from playwright.sync_api import expect

    page = plain_page
    page.goto(harness.api + FORM)
    fill(page, "ada@example", sku="MUG-001", quantity="3")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator('[data-ob-error-for="email"]')).to_contain_text("not a valid email address")
    expect(field(page, "Email")).to_be_focused()  # autofocus on the first invalid field
    expect(field(page, "City")).to_have_value("London")
    expect(field(page, "Mug")).to_be_checked()
    expect(field(page, "Quantity of Mug")).to_have_value("3")
    expect(field(page, "Country")).to_have_value("GB")
    expect(page.locator("[data-ob-total-value]")).to_have_text("37.50 USD")  # the server's rendering
    shot(page, "02c-field-errors-without-script")


# --- double clicks -------------------------------------------------------------------------------------


def test_double_click_is_one_order(harness, page, plain_page):
    from playwright.sync_api import expect

    # with the script: the button is disabled after the first click
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(harness.api + FORM)
    email = unique_email()
    fill(page, email)
    page.get_by_role("button", name="Place order").dblclick()
    expect(page.locator("[data-ob-confirmation]")).to_be_visible()
    tracking_id = page.locator(".ob-reference").inner_text()
    assert len(posts) == 1
    # without the script: both posts reach the intake; the page's submission id makes them one order
    plain_page.goto(harness.api + FORM)
    plain_email = unique_email()
    fill(plain_page, plain_email)
    plain_page.get_by_role("button", name="Place order").dblclick()
    plain_page.wait_for_url("**/confirmation/ob_*")
    plain_tracking_id = plain_page.url.rsplit("/", 1)[1]
    harness.drain(until=lambda: harness.final(tracking_id)() and harness.final(plain_tracking_id)())
    expect(page.locator("[data-ob-confirmation]")).to_have_attribute("data-ob-state", "SUCCEEDED")
    assert len(bigcommerce_orders_for(harness, email)) == 1
    assert len(bigcommerce_orders_for(harness, plain_email)) == 1
    plain_page.reload()  # the page without the script refreshes itself; reload instead of waiting for it
    expect(plain_page.get_by_role("heading", name="Order created")).to_be_visible()
    shot(plain_page, "05b-confirmation-created-without-script")


# --- embedded on a shop's page (another origin) ----------------------------------------------------


class _ShopPage(BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def shop(harness) -> Iterator[str]:
    """A shop's own page on another port with the snippet pasted in; its origin allowed for the form."""
    snippet = harness.get(f"{FORM}/embed").text
    handler = type(
        "Shop",
        (_ShopPage,),
        {"html": f"<!doctype html><html lang='en'><title>My shop</title><h1>My shop</h1>{snippet}".encode()},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{server.server_port}"
    config = copy.deepcopy(harness.system.local_config())
    config["forms"]["fk_demo0001"]["allowed_origins"].append(origin)
    harness.system.upload_config(config)
    try:
        for _ in range(100):  # the intake re-reads its configuration every second locally
            if (
                requests.options(harness.api + FORM, headers={"Origin": origin}, timeout=10).status_code
                == 204
            ):
                break
            threading.Event().wait(0.2)
        else:
            pytest.fail("the intake never allowed the shop's origin")
        yield origin
    finally:
        harness.system.upload_config()
        server.shutdown()


def test_snippet_embedded_on_another_origin(harness, page, shop):
    from playwright.sync_api import expect

    page.goto(shop)
    expect(page.get_by_role("heading", name="My shop")).to_be_visible()
    email = unique_email()
    fill(page, email, sku="TEE-BLUE-L", quantity="1")
    page.get_by_role("button", name="Place order").click()
    panel = page.locator("[data-ob-confirmation]")
    expect(panel).to_have_attribute("data-ob-state", "PENDING")
    assert page.url.startswith(shop)  # the buyer stays on the shop's page
    tracking_id = page.locator(".ob-reference").inner_text()
    harness.drain(until=harness.final(tracking_id))
    expect(panel).to_have_attribute("data-ob-state", "SUCCEEDED")
    shot(page, "06-embedded-on-shop-created")
    [created] = harness.orders_with_reference(tracking_id)
    assert created["request"]["billing_address"]["email"] == email


# --- Komerza: the provider's checkout -----------------------------------------------------------------


def test_komerza_route_ends_on_the_sandbox_checkout_page(harness, page, plain_page):
    from playwright.sync_api import expect

    checkout = f"{harness.sandbox}/komerza/checkout/**"
    for browser_page, name in (
        (page, "07-komerza-checkout"),
        (plain_page, "07b-komerza-checkout-without-script"),
    ):
        browser_page.goto(harness.api + KOMERZA)
        fill(browser_page, unique_email(), sku="MUG-001", quantity="1")
        browser_page.get_by_role("button", name="Place order").click()
        browser_page.wait_for_url(checkout)
        expect(browser_page).to_have_title("Komerza sandbox checkout")
        expect(browser_page.get_by_role("heading", name="Komerza sandbox checkout")).to_be_visible()
        shot(browser_page, name)
    harness.drain()  # the queued safety-net copies find the orders already created


# --- prices, the total, a phone-sized screen, a tampered post ----------------------------------------


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


def assert_no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide at {PHONE['width']} px"


def test_prices_and_running_total_on_a_375_px_phone(harness, phone):
    from playwright.sync_api import expect

    page = phone
    page.goto(harness.api + FORM)
    expect(page.get_by_role("heading", name="Place your order")).to_be_visible()
    # the server's prices, in the browser's format (Intl.NumberFormat, the page's language)
    expect(page.locator("#fk_demo0001-items-0-price")).to_have_text("$15.00")
    expect(page.locator("#fk_demo0001-items-2-price")).to_have_text("$12.50")
    total = page.locator("[data-ob-total-value]")
    expect(total).to_have_text("$0.00")
    assert_no_horizontal_scroll(page)
    shot(page, "08-phone-375-empty")
    field(page, NAMES["TEE-BLUE-M"]).check()
    field(page, f"Quantity of {NAMES['TEE-BLUE-M']}").fill("2")
    expect(total).to_have_text("$30.00")
    field(page, NAMES["MUG-001"]).check()
    expect(total).to_have_text("$42.50")
    field(page, f"Quantity of {NAMES['MUG-001']}").fill("3")
    expect(total).to_have_text("$67.50")
    field(page, f"Quantity of {NAMES['MUG-001']}").fill("")  # not a quantity: that line counts nothing
    expect(total).to_have_text("$30.00")
    field(page, NAMES["TEE-BLUE-M"]).uncheck()
    expect(total).to_have_text("$0.00")
    field(page, NAMES["MUG-001"]).check()
    field(page, f"Quantity of {NAMES['MUG-001']}").fill("100000")
    expect(total).to_have_text("$1,250,000.00")
    assert_no_horizontal_scroll(page)
    # errors in place, still no sideways scrolling
    field(page, "Email").fill("not-an-email-but-a-very-long-word-without-any-spaces-at-all-to-wrap")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator('[data-ob-error-for="email"]')).to_have_text("Enter a valid email address.")
    assert_no_horizontal_scroll(page)
    shot(page, "09-phone-375-errors")
    # a whole order on the phone, to its confirmation
    page.reload()
    fill(page, unique_email(), sku="MUG-001", quantity="2", country="NZ")
    expect(total).to_have_text("$25.00")
    shot(page, "10-phone-375-filled")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("[data-ob-confirmation]")).to_be_visible()
    assert_no_horizontal_scroll(page)
    shot(page, "11-phone-375-confirmation")
    tracking_id = page.locator(".ob-reference").inner_text()
    harness.drain(until=harness.final(tracking_id))
    [created] = harness.orders_with_reference(tracking_id)
    assert products(created) == [(112, None, 2, Decimal("12.5"), Decimal("12.5"))]
    assert created["request"]["billing_address"]["country_iso2"] == "NZ"


def test_a_price_slipped_into_the_post_changes_nothing(harness, page, plain_page):
    """Extra fields added to the form (a price per line, a currency, a total) are never used."""
    from playwright.sync_api import expect

    tamper = """form => {
        for (const [name, value] of [["items[0][unit_price]", "0.01"], ["items[0][price]", "0.01"],
                                     ["currency", "JPY"], ["total", "0.01"], ["order_discount", "29"]]) {
            const input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = value;
            form.appendChild(input);
        }
        document.querySelector("[data-ob-price]").setAttribute("data-ob-price", "0.01");
    }"""
    tracking_ids = []
    for browser_page in (page, plain_page):  # with the script (fetch) and without it (a plain post)
        browser_page.goto(harness.api + FORM)
        fill(browser_page, unique_email(), sku="TEE-BLUE-M", quantity="2")
        browser_page.locator("form[data-orderbridge-form]").evaluate(tamper)
        browser_page.get_by_role("button", name="Place order").click()
        if browser_page is page:
            expect(page.locator("[data-ob-confirmation]")).to_be_visible()
            tracking_ids.append(page.locator(".ob-reference").inner_text())
        else:
            plain_page.wait_for_url("**/confirmation/ob_*")
            tracking_ids.append(plain_page.url.rsplit("/", 1)[1])
    harness.drain(until=lambda: all(harness.final(t)() for t in tracking_ids))
    for tracking_id in tracking_ids:
        [created] = harness.orders_with_reference(tracking_id)
        request = created["request"]
        assert products(created) == [(111, 77, 2, Decimal(15), Decimal(15))]
        assert request.get("default_currency_code") in (None, "USD")
        assert Decimal(str(request.get("discount_amount") or 0)) == 0
        for total in ("total_inc_tax", "total_ex_tax", "subtotal_inc_tax", "subtotal_ex_tax"):
            assert request.get(total) is None or Decimal(str(request[total])) == 30
