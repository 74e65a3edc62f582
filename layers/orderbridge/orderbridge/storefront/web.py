"""The storefront's HTTP answers, shared by the intake function and anything else serving it.

A browser's plain form post (no script) gets a 303 to the confirmation page, or to the provider's
checkout, or the form again with its errors; the script asks for JSON (`Accept: application/json`)
and gets the intake's usual JSON answers, with the form's CORS headers on errors too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import string
import uuid
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response

from orderbridge.exceptions import IntakeRejectedError
from orderbridge.intake import mapping
from orderbridge.intake.http import accepted_response, cors_headers, error_response
from orderbridge.storefront import pages

if TYPE_CHECKING:
    from orderbridge.intake.service import Accepted, IntakeService
    from orderbridge.models.config import FormConfig, OrderbridgeConfig

HTML = "text/html; charset=utf-8"
ASSETS = {pages.SCRIPT: "text/javascript; charset=utf-8", pages.STYLESHEET: "text/css; charset=utf-8"}
POLL_SECONDS = 3  # how often the confirmation page refreshes itself without the script
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'",
}


# The only tracking ids a status route looks up: what the intake hands out (`ob_` + 32 hex digits).
# The dispatcher's `msg_<message id>` records of malformed events are for operators (`ops`), never
# handed to a sender, so no status route reads them.
TRACKING_ID = re.compile(r"ob_[0-9a-f]{32}")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def is_tracking_id(value: object) -> bool:
    """Whether `value` has the form of a tracking id: anything else is not found, without a lookup."""
    return isinstance(value, str) and TRACKING_ID.fullmatch(value) is not None


def safe_redirect(url: object, config: OrderbridgeConfig) -> str | None:
    """`url` if it is a provider's checkout page this stack may send a buyer to, else None.

    Allowed: exactly what a destination's `checkout_url_template` gives for a uuid order id (so no
    CR/LF, `?query`, `../` or other host), over https; over http only on the destination's own
    configured loopback base URL (the local sandbox).
    """
    if not isinstance(url, str) or len(url) > 2048:
        return None
    for destination in config.destinations.values():
        settings = destination.settings or {}
        template = settings.get("checkout_url_template")
        if not isinstance(template, str) or not template:
            continue
        pattern = _template_pattern(template, settings.get("store_id"))
        if pattern is None or pattern.fullmatch(url) is None:
            continue
        target = urlsplit(url)
        if target.scheme == "https" and target.hostname and not target.username and not target.password:
            return url
        base = urlsplit(str(destination.base_url)) if destination.base_url else None
        if (
            target.scheme == "http"
            and base is not None
            and (base.scheme, base.netloc) == (target.scheme, target.netloc)
            and target.hostname in _LOOPBACK
        ):
            return url
    return None


def _template_pattern(template: str, store_id: object) -> re.Pattern[str] | None:
    parts = []
    try:
        for literal, field, spec, conversion in string.Formatter().parse(template):
            parts.append(re.escape(literal))
            if field is None:
                continue
            if spec or conversion or field not in ("order_id", "store_id"):
                return None
            parts.append(_UUID if field == "order_id" else re.escape(str(store_id)))
    except ValueError:
        return None
    return re.compile("".join(parts))


def checked_accepted(accepted: Accepted, config: OrderbridgeConfig) -> Accepted:
    """`accepted` without its redirect unless the redirect is a checkout page allowed above."""
    if accepted.redirect_url and safe_redirect(accepted.redirect_url, config) is None:
        return dataclasses.replace(accepted, redirect_url=None)
    return accepted


def checked_status(status: dict[str, Any], config: OrderbridgeConfig) -> dict[str, Any]:
    """A status answer whose destinations carry only allowed checkout redirects."""
    destinations = []
    for d in status.get("destinations", []):
        if isinstance(d, dict) and d.get("redirect_url") and safe_redirect(d["redirect_url"], config) is None:
            d = {**d, "redirect_url": None}
        destinations.append(d)
    return {**status, "destinations": destinations}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def api_root(path: str) -> str:
    """The API's root relative to a page at `path` (`/forms/k` -> `../`): right under any stage prefix."""
    depth = len([p for p in path.split("/") if p]) - 1
    return "../" * depth if depth > 0 else "./"


def own_origin(headers: Mapping[str, str]) -> str | None:
    """This API's origin as the browser sees it (API Gateway sets X-Forwarded-Proto)."""
    host = _header(headers, "host")
    if not host:
        return None
    proto = (_header(headers, "x-forwarded-proto") or "http").split(",")[0].strip()
    return f"{proto}://{host}"


def public_base(headers: Mapping[str, str], path: str, context_path: str | None) -> str:
    """Absolute URL of the API's root, for the snippet a shop pastes on its own page."""
    origin = own_origin(headers) or ""
    host = _header(headers, "host") or ""
    prefix = ""
    if host.endswith(".amazonaws.com") and context_path and context_path.endswith(path):
        prefix = context_path[: len(context_path) - len(path)]  # the stage, on the default endpoint
    return f"{origin}{prefix}/"


def wants_json(headers: Mapping[str, str]) -> bool:
    accept = (_header(headers, "accept") or "").lower()
    return "application/json" in accept and "text/html" not in accept


class Storefront:
    """The form page, the snippet, the browser's post, the confirmation page and the assets."""

    def __init__(self, *, service: IntakeService) -> None:
        self.service = service

    # --- pages -------------------------------------------------------------------------------------

    def form_page(self, form_key: str, *, root: str) -> Response:
        form = self._form(form_key)
        if form is None:
            return self._not_found(root)
        body = pages.render_form(
            form_key=form_key, base=root, items=self._items(form), submission_id=uuid.uuid4().hex
        )
        return _html(200, pages.render_page(title="Place your order", root=root, body=body))

    def snippet(self, form_key: str, *, base: str) -> Response:
        form = self._form(form_key)
        if form is None:
            raise IntakeRejectedError(404, "FORM_NOT_FOUND", "unknown form key")
        html = pages.render_snippet(form_key=form_key, base=base, items=self._items(form))
        return Response(
            status_code=200,
            content_type=HTML,
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
            body=html,
        )

    def confirmation_page(self, form_key: str, tracking_id: str, *, root: str) -> Response:
        status = self._status(form_key, tracking_id)
        if status is None:
            return _html(
                404,
                pages.render_message(
                    title="Order not found", root=root, message="No order with that reference."
                ),
            )
        html = pages.render_confirmation(
            form_key=form_key, root=root, tracking_id=tracking_id, status=status, poll_seconds=POLL_SECONDS
        )
        return _html(200, html)

    def order_status(self, form_key: str, tracking_id: str, *, origin: str | None) -> Response:
        """The status poll for this form's orders only, with the form's CORS headers."""
        headers = cors_headers(self.service.allowed_origin(form_key, origin))
        status = self._status(form_key, tracking_id)
        if status is None:
            response = error_response(IntakeRejectedError(404, "NOT_FOUND", "no order with that tracking id"))
        else:
            response = Response(status_code=200, content_type="application/json", body=status)
        response.headers.update(headers | {"Cache-Control": "no-store"})
        return response

    def asset(self, name: str) -> Response:
        if name not in ASSETS:
            raise IntakeRejectedError(404, "NOT_FOUND", "no such file")
        data = _asset(name)
        return Response(
            status_code=200,
            content_type=ASSETS[name],
            headers={
                "Cache-Control": "public, max-age=300",
                "ETag": '"' + hashlib.sha256(data.encode()).hexdigest()[:32] + '"',
                "X-Content-Type-Options": "nosniff",
                "Access-Control-Allow-Origin": "*",
            },
            body=data,
        )

    # --- the browser's post ------------------------------------------------------------------------

    def submit(
        self,
        form_key: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        ip: str | None,
        user_agent: str | None,
        root: str,
        base_path: str = "",
    ) -> Response:
        """Accept a post from the form; a post from this API's own page is not cross-origin.
        `base_path` (`intake.http.api_base_path`) prefixes a JSON answer's `status_url`."""
        origin = _header(headers, "origin")
        if origin and origin == own_origin(headers):
            origin = None
        as_json = wants_json(headers)
        cors = cors_headers(self.service.allowed_origin(form_key, origin))
        try:
            accepted = self.service.submit_form(
                form_key=form_key,
                content_type=_header(headers, "content-type"),
                body=body,
                origin=origin,
                ip=ip,
                user_agent=user_agent,
            )
        except IntakeRejectedError as exc:
            if as_json:
                response = error_response(exc)
                response.headers.update(cors)
                return response
            return self._form_again(form_key, exc, body, root)
        accepted = checked_accepted(accepted, self.service.config.load())
        if as_json:
            return accepted_response(accepted, cors, base_path=base_path)
        location = accepted.redirect_url or f"confirmation/{accepted.tracking_id}"
        return Response(status_code=303, headers={**cors, "Location": location, "Cache-Control": "no-store"})

    def _form_again(self, form_key: str, exc: IntakeRejectedError, body: bytes, root: str) -> Response:
        """The form with the buyer's values kept and the server's errors next to their fields."""
        form = self._form(form_key)
        if form is None:
            return self._not_found(root)
        try:
            values: dict[str, Any] = mapping.parse_urlencoded(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            values = {}
        values.pop("website", None)
        general = [] if exc.fields else [exc.message]
        state = pages.form_errors(exc.fields, values, general)
        submission_id = str(values.get("submission_id") or uuid.uuid4().hex)[:128]
        html = pages.render_form(
            form_key=form_key, base=root, items=self._items(form), state=state, submission_id=submission_id
        )
        return _html(exc.status, pages.render_page(title="Place your order", root=root, body=html))

    # --- helpers -----------------------------------------------------------------------------------

    def _form(self, form_key: str) -> FormConfig | None:
        return self.service.config.load().forms.get(form_key)

    def _items(self, form: FormConfig) -> list[pages.Item]:
        route = self.service.config.load().routes[form.route]
        return pages.route_items(route)

    def _status(self, form_key: str, tracking_id: str) -> dict[str, Any] | None:
        """The order's status if it came in through this form (a reference from elsewhere is not found)."""
        if not is_tracking_id(tracking_id):
            return None  # not a tracking id: not found, without a lookup
        form = self._form(form_key)
        if form is None:
            return None
        status = self.service.status(tracking_id, source=form.source)
        return None if status is None else checked_status(status, self.service.config.load())

    def _not_found(self, root: str) -> Response:
        return _html(
            404, pages.render_message(title="Form not found", root=root, message="No such order form.")
        )


def _html(status: int, body: str) -> Response:
    return Response(status_code=status, content_type=HTML, headers=dict(PAGE_HEADERS), body=body)


def _asset(name: str) -> str:
    return resources.files("orderbridge.storefront").joinpath("static", name).read_text("utf-8")
