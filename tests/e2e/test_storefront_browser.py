"""The storefront form in a real browser: Debian's headless chromium, driven by Playwright.

Against the local run (the session `harness`): a valid order is created on the sandbox and the
confirmation follows it; bad input shows its errors in place; a double click is one order (with
and without the script); the snippet works embedded on a shop's page on another origin; a Komerza
route ends on the sandbox's checkout page. Screenshots of each state go to tests/artifacts/.
"""

from __future__ import annotations

import copy
import os
import re
import threading
import uuid
from collections.abc import Iterator
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
    field(page, "Country code (2 letters, e.g. US)").fill(country)
    field(page, sku).check()
    field(page, f"Quantity of {sku}").fill(quantity)


def field(page: Any, label: str) -> Any:
    """The control labelled `label` (a required field's label ends with an asterisk)."""
    return page.get_by_label(re.compile("^" + re.escape(label) + r"( \*)?$"))


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
    fill(page, email, country="gb")  # the script upper-cases it, as the model requires
    held: list[Any] = []  # hold the post to see the submitting state
    page.route("**/forms/fk_demo0001/submit", lambda route: held.append(route))
    button = page.get_by_role("button", name="Place order")
    button.click()
    expect(button).to_be_disabled()
    expect(button).to_have_attribute("aria-busy", "true")
    expect(page.locator(".ob-spinner")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Placing your order\u2026")
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
    assert created["request"]["billing_address"]["country_iso2"] == "GB"  # typed "gb", upper-cased
    assert created["request"]["products"] == [{"product_id": 111, "variant_id": 77, "quantity": 2}]


# --- bad input -------------------------------------------------------------------------------------


def test_bad_input_shows_errors_next_to_fields_and_focuses_the_first(harness, page):
    from playwright.sync_api import expect

    page.goto(harness.api + FORM)
    email = field(page, "Email")
    email.fill("not-an-email")
    field(page, "Postal code").fill("1")
    page.get_by_role("button", name="Place order").click()
    # the browser-side checks, from the limits the page carries
    expect(email).to_be_focused()
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-ob-error-for="email"]')).to_have_text("Enter a valid email address.")
    expect(page.locator('[data-ob-error-for="address[zip]"]')).to_have_text("Use at least 2 characters.")
    expect(page.locator('[data-ob-error-for="items"]')).to_have_text("Choose at least one item.")
    expect(page.locator('[data-ob-error-for="address[city]"]')).to_have_text("This field is required.")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("There is a problem with your order")
    expect(alert).to_contain_text("Email: Enter a valid email address.")
    shot(page, "02-field-errors")
    # the summary's links take the keyboard to the field
    alert.get_by_role("link", name="Items: Choose at least one item.").click()
    expect(field(page, "TEE-BLUE-M")).to_be_focused()


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
        "Country code (2 letters, e.g. US)": "GB",
    }
    for label, value in fill_rest.items():
        field(page, label).focus()
        page.keyboard.type(value)
    field(page, "MUG-001").focus()
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
    expect(field(page, "MUG-001")).to_be_checked()
    expect(field(page, "Quantity of MUG-001")).to_have_value("3")
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
