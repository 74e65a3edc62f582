"""HTML of the storefront form, its embeddable snippet and the confirmation page.

Plain strings and `html.escape`: every value that came from a request or the configuration is
escaped where it is placed, so nothing a buyer types can become markup. URLs are relative to the
API's root (`root`), so the same page works under API Gateway's stage prefix and on the local run;
the snippet gets absolute ones because it lives on the shop's own page.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from html import escape
from string import Template
from typing import TYPE_CHECKING, Any

from orderbridge.models import money
from orderbridge.models.outcome import OrderState
from orderbridge.storefront.limits import field_limits, line_limits

if TYPE_CHECKING:
    from orderbridge.models.config import Route

SCRIPT = "orderbridge-form.js"
STYLESHEET = "orderbridge-form.css"
INVALID = ' aria-invalid="true"'

# (legend, [(name, label, input type, autocomplete)]): the limits come from the model (limits.py)
SECTIONS: tuple[tuple[str, tuple[tuple[str, str, str, str], ...]], ...] = (
    (
        "Contact",
        (
            ("email", "Email", "email", "email"),
            ("phone", "Phone", "tel", "tel"),
        ),
    ),
    (
        "Shipping address",
        (
            ("first_name", "First name", "text", "given-name"),
            ("last_name", "Last name", "text", "family-name"),
            ("address[company]", "Company", "text", "organization"),
            ("address[address1]", "Street address", "text", "address-line1"),
            ("address[address2]", "Apartment, suite, etc.", "text", "address-line2"),
            ("address[city]", "City", "text", "address-level2"),
            ("address[province]", "State or province", "text", "address-level1"),
            ("address[zip]", "Postal code", "text", "postal-code"),
            ("address[country]", "Country", "select", "country"),
        ),
    ),
)
FRIENDLY = {  # pydantic's wording for the common cases, in a buyer's words
    "missing": "This field is required.",
    "string_pattern_mismatch": "Use the expected format.",
}


@dataclass(frozen=True)
class Item:
    """One row of the form's items; `price` and `currency` from the route's `items` (None: unpriced)."""

    sku: str
    label: str
    price: Decimal | None = None
    currency: str | None = None


@dataclass
class FormState:
    """What the page shows: kept values, errors by field name, and errors for the summary only."""

    values: Mapping[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)


def route_items(route: Route) -> list[Item]:
    """The route's priced `items` in their configured order; a route without them lists its catalogs."""
    if route.items:
        return [
            Item(sku=sku, label=item.name, price=item.unit_price, currency=item.currency)
            for sku, item in route.items.items()
        ]
    return catalog_items([d.catalog for d in route.destinations])


def catalog_items(catalogs: Sequence[Mapping[str, Mapping[str, Any]]]) -> list[Item]:
    """SKUs every destination of the route can map, in the first catalog's order."""
    if not catalogs:
        return []
    common = set(catalogs[0]).intersection(*catalogs[1:])
    items = []
    for sku, ref in catalogs[0].items():
        if sku in common:
            label = next((str(ref[k]) for k in ("name", "title") if isinstance(ref.get(k), str)), sku)
            items.append(Item(sku=sku, label=label))
    return items


def form_errors(
    fields: list[dict[str, str]], values: Mapping[str, Any], general: list[str] | None = None
) -> FormState:
    """The server's `{field, code, message}` list placed on the form's own fields.

    Line errors name the form's own row, as posted (`items[2][quantity]`: the intake's
    `mapping.FormFieldNames`); one about a whole line or its name goes to the item list.
    """
    state = FormState(values=values, general=list(general or []))
    for f in fields:
        name = f.get("field", "")
        match = re.fullmatch(r"items\[(\d+)\](.*)", name)
        if match and match.group(2) in ("", "[name]"):
            name = "items"
        message = FRIENDLY.get(f.get("code", ""), f.get("message", "Invalid value."))
        if name == "items" and f.get("code") == "too_short":
            message = "Choose at least one item."
        if (
            name in _known_fields()
            or re.fullmatch(r"items\[\d+\]\[(quantity|sku)\]", name)
            or name == "items"
        ):
            state.errors.setdefault(name, message)
        else:
            state.general.append(f"{name}: {message}")
    return state


def chosen_rows(values: Mapping[str, Any]) -> list[int]:
    """Form rows with a ticked item, in the order the intake turns them into lines."""
    items = values.get("items")
    if not isinstance(items, Mapping):
        return []
    keys = sorted(items, key=lambda k: int(k) if str(k).isdigit() else 0)
    return [
        int(k) for k in keys if str(k).isdigit() and isinstance(items[k], Mapping) and items[k].get("sku")
    ]


@cache
def countries() -> tuple[tuple[str, str], ...]:
    """ISO 3166-1 (code, name) pairs sorted by name, from `pycountry` (the ISO tables as published);
    the everyday name where ISO's is formal ("Bolivia", not "Bolivia, Plurinational State of")."""
    import pycountry  # only pages need it: the intake's other paths never load its tables

    def key(pair: tuple[str, str]) -> str:
        return unicodedata.normalize("NFKD", pair[1]).encode("ascii", "ignore").decode().casefold()

    pairs = [(c.alpha_2, getattr(c, "common_name", None) or c.name) for c in pycountry.countries]
    return tuple(sorted(pairs, key=key))


def format_money(amount: Decimal, currency: str) -> str:
    """The server's rendering of an amount ("1,234.50 USD"); the script shows the browser's own."""
    places = money.minor_units(currency)
    return f"{amount.quantize(money.quantum(currency)):,.{places}f} {currency}"


def _amount(amount: Decimal, currency: str, extra: str = "") -> str:
    """An amount the script re-renders with Intl.NumberFormat (the page's language)."""
    value = amount.quantize(money.quantum(currency))
    return (
        f'<span class="ob-amount" data-ob-amount="{value}" data-ob-currency="{escape(currency)}"{extra}>'
        f"{escape(format_money(amount, currency))}</span>"
    )


def _known_fields() -> set[str]:
    return {name for _, fields in SECTIONS for name, *_ in fields} | {"coupon", "notes"}


def _value(values: Mapping[str, Any], name: str) -> str:
    node: Any = values
    for part in name.replace("]", "").split("["):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, str) else ("" if node is None else str(node))


def _id(form_key: str, name: str) -> str:
    return f"{form_key}-" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


def _attrs(limits: Mapping[str, Any]) -> str:
    out = " required" if limits.get("required") else ""
    for key in ("minlength", "maxlength", "min", "max", "pattern"):
        if key in limits:
            out += f' {key}="{escape(str(limits[key]))}"'
    return out


class _Autofocus:
    """Puts `autofocus` on the first invalid field (no script: the browser focuses it)."""

    def __init__(self) -> None:
        self.done = False

    def __call__(self, invalid: bool) -> str:
        if invalid and not self.done:
            self.done = True
            return " autofocus"
        return ""


def _error(fid: str, name: str, message: str | None) -> str:
    return (
        f'<p class="ob-error" id="{fid}-error" data-ob-error-for="{escape(name)}">{escape(message or "")}</p>'
    )


def _select(fid: str, name: str, autocomplete: str, state: FormState, attrs: str) -> str:
    """The country list: ISO 3166-1 codes as values, names as text; the kept value selected."""
    current = _value(state.values, name).strip().upper()
    options = "".join(
        f'<option value="{code}"{" selected" if code == current else ""}>{escape(label)}</option>'
        for code, label in countries()
    )
    return (
        f'<select id="{fid}" name="{escape(name)}" autocomplete="{autocomplete}"{attrs}>'
        f'<option value="">Choose a country</option>{options}</select>'
    )


def _input(form_key: str, spec: tuple[str, str, str, str], state: FormState, focus: _Autofocus) -> str:
    name, label, kind, autocomplete = spec
    limits = field_limits()[name]
    fid, message = _id(form_key, name), state.errors.get(name)
    mark = '<span class="ob-required" aria-hidden="true"> *</span>' if limits.get("required") else ""
    invalid = INVALID if message else ""
    if kind == "select":
        required = " required" if limits.get("required") else ""
        attrs = f' aria-describedby="{fid}-error"{required}{invalid}{focus(bool(message))}'
        return (
            f'<div class="ob-field"><label for="{fid}">{escape(label)}{mark}</label>'
            f"{_select(fid, name, autocomplete, state, attrs)}{_error(fid, name, message)}</div>"
        )
    extra = ' autocapitalize="characters" data-ob-upper' if limits.get("upper") else ""
    return (
        f'<div class="ob-field"><label for="{fid}">{escape(label)}{mark}</label>'
        f'<input id="{fid}" name="{escape(name)}" type="{kind}" autocomplete="{autocomplete}"'
        f'{_attrs(limits)}{extra} aria-describedby="{fid}-error"{invalid}{focus(bool(message))}'
        f' value="{escape(_value(state.values, name))}">{_error(fid, name, message)}</div>'
    )


def _quantity(values: Mapping[str, Any], name: str) -> int | None:
    text = _value(values, name).strip() or "1"
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else None


def _total(items: Sequence[Item], state: FormState) -> str:
    """The running total (the script keeps it current); after a plain post, of the chosen rows."""
    currency = next((item.currency for item in items if item.currency), None)
    if currency is None:
        return ""
    chosen = set(chosen_rows(state.values)) if state.values else set()
    total = Decimal(0)
    for i, item in enumerate(items):
        quantity = _quantity(state.values, f"items[{i}][quantity]") if i in chosen else None
        if item.price is not None and quantity is not None:
            total += item.price * quantity
    return (
        f'<p class="ob-total" data-ob-total>Total: <output aria-live="polite" data-ob-total-value>'
        f"{_amount(total, currency)}</output></p>"
    )


def _items(form_key: str, items: Sequence[Item], state: FormState, focus: _Autofocus) -> str:
    min_lines, max_lines = line_limits()
    qty = {k: v for k, v in field_limits()["quantity"].items() if k != "required"}
    fid, message = _id(form_key, "items"), state.errors.get("items")
    chosen = set(chosen_rows(state.values)) if state.values else set()
    rows = []
    for i, item in enumerate(items):
        row_id, qname, sname = _id(form_key, f"items-{i}"), f"items[{i}][quantity]", f"items[{i}][sku]"
        qid, qmessage, smessage = _id(form_key, qname), state.errors.get(qname), state.errors.get(sname)
        quantity = _value(state.values, qname) or "1"
        checked = " checked" if i in chosen else ""
        price, price_data = "", ""
        if item.price is not None and item.currency:
            price = _amount(item.price, item.currency, f' id="{row_id}-price"')
            price_data = f' data-ob-price="{item.price.quantize(money.quantum(item.currency))}"'
        described = f"{row_id}-price {row_id}-error" if price else f"{row_id}-error"
        rows.append(
            f'<div class="ob-item"{price_data}><input type="checkbox" id="{row_id}" name="{sname}"'
            f' value="{escape(item.sku)}" aria-describedby="{described}"{INVALID if smessage else ""}'
            f"{checked}{focus(bool(smessage) or (bool(message) and i == 0))}>"
            f'<label class="ob-item-name" for="{row_id}">{escape(item.label)}</label>'
            f'<span class="ob-price">{price}</span>'
            f'<div class="ob-quantity"><label for="{qid}">Quantity'
            f'<span class="ob-visually-hidden"> of {escape(item.label)}</span></label>'
            f'<input id="{qid}" name="{qname}" type="number" inputmode="numeric"{_attrs(qty)}'
            f' aria-describedby="{qid}-error"{INVALID if qmessage else ""}'
            f'{focus(bool(qmessage))} value="{escape(quantity)}"></div>'
            f'<div class="ob-item-errors"><p class="ob-error" id="{row_id}-error"'
            f' data-ob-error-for="{escape(sname)}">{escape(smessage or "")}</p>'
            f"{_error(qid, qname, qmessage)}</div></div>"
        )
    invalid = INVALID if message else ""
    return (
        f'<fieldset class="ob-items" data-ob-items data-min-lines="{min_lines}" data-max-lines="{max_lines}"'
        f' aria-describedby="{fid}-error"{invalid}><legend>Items</legend>{"".join(rows)}'
        f"{_total(items, state)}{_error(fid, 'items', message)}</fieldset>"
    )


def _summary(form_key: str, state: FormState, labels: Mapping[str, str]) -> str:
    """The error summary: a live region the script fills, already filled after a plain post."""

    def target(name: str) -> str:
        row = re.fullmatch(r"items\[(\d+)\]\[sku\]", name)
        return _id(form_key, f"items-{row.group(1)}" if row else "items-0" if name == "items" else name)

    entries = [
        f'<li><a href="#{target(name)}">{escape(labels.get(name, name))}: {escape(message)}</a></li>'
        for name, message in state.errors.items()
    ] + [f"<li>{escape(m)}</li>" for m in state.general]
    inner = (
        f'<h2 class="ob-summary-title">There is a problem with your order</h2><ul>{"".join(entries)}</ul>'
        if entries
        else ""
    )
    return f'<div class="ob-summary" role="alert" tabindex="-1" data-ob-summary>{inner}</div>'


def render_form(
    *,
    form_key: str,
    base: str,
    items: Sequence[Item],
    state: FormState | None = None,
    submission_id: str = "",
) -> str:
    """The `<form>` itself: posts to `{base}forms/{key}/submit` with or without the script."""
    state = state or FormState()
    for name in [n for n in state.errors if re.fullmatch(r"items\[\d+\]\[sku\]", n)]:
        if int(name[6 : name.index("]")]) >= len(items):  # a row this page does not have: at the items
            state.errors.setdefault("items", state.errors.pop(name))
    focus = _Autofocus()
    key = escape(form_key)
    sections = "".join(
        f'<fieldset class="ob-section"><legend>{escape(legend)}</legend>'
        + "".join(_input(form_key, spec, state, focus) for spec in fields)
        + "</fieldset>"
        for legend, fields in SECTIONS
    )
    coupon_id, notes_id = _id(form_key, "coupon"), _id(form_key, "notes")
    notes_limits = field_limits()["notes"]
    labels = {name: label for _, fields in SECTIONS for name, label, *_ in fields}
    labels |= {"coupon": "Coupon code", "notes": "Notes", "items": "Items"}
    labels |= {f"items[{i}][quantity]": f"Quantity of {item.label}" for i, item in enumerate(items)}
    labels |= {f"items[{i}][sku]": item.label for i, item in enumerate(items)}
    return (
        f'<form class="ob-form" method="post" action="{escape(base)}forms/{key}/submit"'
        f' data-orderbridge-form="{key}" data-status-url="{escape(base)}forms/{key}/orders/{{tracking_id}}"'
        f' accept-charset="utf-8">'
        f"{_summary(form_key, state, labels)}"
        f'<p class="ob-hint">Fields marked <span aria-hidden="true">*</span> are required.</p>'
        f"{sections}{_items(form_key, items, state, focus)}"
        f'<fieldset class="ob-section"><legend>Extras</legend>'
        f'<div class="ob-field"><label for="{coupon_id}">Coupon code</label>'
        f'<input id="{coupon_id}" name="coupon" type="text" autocomplete="off"'
        f'{_attrs(field_limits()["coupon"])} aria-describedby="{coupon_id}-error"'
        f"{INVALID if 'coupon' in state.errors else ''}{focus('coupon' in state.errors)}"
        f' value="{escape(_value(state.values, "coupon"))}">'
        f"{_error(coupon_id, 'coupon', state.errors.get('coupon'))}</div>"
        f'<div class="ob-field"><label for="{notes_id}">Notes</label>'
        f'<textarea id="{notes_id}" name="notes" rows="3"{_attrs(notes_limits)}'
        f' aria-describedby="{notes_id}-error"{INVALID if "notes" in state.errors else ""}'
        f"{focus('notes' in state.errors)}>{escape(_value(state.values, 'notes'))}</textarea>"
        f"{_error(notes_id, 'notes', state.errors.get('notes'))}</div></fieldset>"
        f'<div class="ob-honeypot" aria-hidden="true">'
        f'<label for="{key}-website">Leave this field empty</label><input id="{key}-website"'
        f' name="website" type="text" tabindex="-1" autocomplete="off" value=""></div>'
        f'<input type="hidden" name="submission_id" value="{escape(submission_id)}">'
        f'<div class="ob-actions"><button type="submit" class="ob-submit" data-ob-submit>'
        f'<span class="ob-spinner" aria-hidden="true"></span><span>Place order</span></button>'
        f'<p class="ob-status" role="status" aria-live="polite" data-ob-status></p></div>'
        f"</form>"
    )


def render_snippet(*, form_key: str, base: str, items: Sequence[Item]) -> str:
    """What a shop pastes into its page: the form and one script, both from the intake.

    No submission id in it (the snippet is static, shared by every visitor): the script makes one
    per page load; without the script the intake deduplicates by the body.
    """
    return (
        f'<link rel="stylesheet" href="{escape(base)}storefront/{STYLESHEET}">\n'
        f"{render_form(form_key=form_key, base=base, items=items)}\n"
        f'<script src="{escape(base)}storefront/{SCRIPT}" defer></script>\n'
    )


PAGE = Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>$head
<link rel="stylesheet" href="${root}storefront/$stylesheet">
<script src="${root}storefront/$script" defer></script>
</head>
<body>
<main class="ob-page">
<h1>$heading</h1>
$body
</main>
</body>
</html>
"""
)


def render_page(*, title: str, root: str, body: str, head: str = "") -> str:
    """A whole document; `body` is markup the caller built with escaped values."""
    return PAGE.substitute(
        title=escape(title),
        heading=escape(title),
        head=head,
        root=escape(root),
        stylesheet=STYLESHEET,
        script=SCRIPT,
        body=body,
    )


#: What the buyer reads for each order state (the status endpoint's `status`). The script
#: (static/orderbridge-form.js, TEXT) carries the same sentences; tests/test_order_state.py holds
#: them equal. PARTIAL and CHECKING both say "do not order again": the shop has the order.
STATE_TEXT: dict[str, str] = {
    OrderState.PENDING: "We have your order and are placing it now. This page updates by itself.",
    OrderState.SUCCEEDED: "Your order has been created.",
    OrderState.CHECKING: "We are confirming your order with the shop. Please do not order again: "
    "you will hear from the shop.",
    OrderState.PARTIAL: "We have received your order. The shop is completing part of it and will be "
    "in touch if anything is needed. Please do not order again.",
    OrderState.FAILED: "We could not place your order. Please contact the shop and quote the "
    "reference below.",
    OrderState.SKIPPED: "We have received your order.",
}
STATE_TITLE: dict[str, str] = {OrderState.SUCCEEDED: "Order created", OrderState.FAILED: "Order not placed"}
#: States that may still change by themselves: the page keeps looking (CHECKING may turn out created).
STILL_MOVING = frozenset({OrderState.PENDING, OrderState.CHECKING})


def render_confirmation(
    *, form_key: str, root: str, tracking_id: str, status: Mapping[str, Any], poll_seconds: int
) -> str:
    """The page a plain form post lands on; it refreshes (no script) or polls until the order is final."""
    overall = str(status.get("status", "PENDING"))
    redirect = next(
        (d.get("redirect_url") for d in status.get("destinations", []) if d.get("redirect_url")), None
    )
    text = STATE_TEXT.get(overall, STATE_TEXT["PENDING"])
    pay = f'<p><a class="ob-pay" href="{escape(redirect)}">Continue to payment</a></p>' if redirect else ""
    tid = escape(tracking_id)
    body = (
        f'<div class="ob-confirmation" data-ob-confirmation data-ob-state="{escape(overall)}"'
        f' data-status-url="{escape(root)}forms/{escape(form_key)}/orders/{tid}">'
        f'<p class="ob-status" role="status" aria-live="polite" data-ob-status>{escape(text)}</p>'
        f'<p>Order reference: <strong class="ob-reference">{tid}</strong></p>{pay}</div>'
    )
    head = (
        f'\n<noscript><meta http-equiv="refresh" content="{poll_seconds}"></noscript>'
        if overall in STILL_MOVING
        else ""
    )
    title = STATE_TITLE.get(overall, "Order received")
    return render_page(title=title, root=root, body=body, head=head)


def render_message(*, title: str, root: str, message: str) -> str:
    return render_page(title=title, root=root, body=f'<p role="alert">{escape(message)}</p>')
