"""Typed provider configuration and credentials, and secrets never set.

The adapters read their destination's settings, catalog entries and secret only through their
models (`settings_model`, `catalog_entry_model`, `credentials_model`). A secret still holding the
deploy's placeholder (`{"placeholder": true, "token": ...}`, template.yaml) fails fast: the order
is FAILED `CREDENTIALS_NOT_SET` with no call reaching the provider, and `orderbridge retry`
delivers it once the secret is set. The last part runs through the local system (moto's server,
the real dispatcher and intake, the provider sandboxes)."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from orderbridge.credentials import PLACEHOLDER_KEY, CredentialStore, is_placeholder
from orderbridge.exceptions import (
    CredentialsError,
    CredentialsMalformedError,
    CredentialsNotSetError,
    RequestRejectedError,
)
from orderbridge.models.outcome import OutcomeStatus
from orderbridge.providers.registry import PROVIDERS, get_provider_class
from orderbridge_ops import cli
from tests.factories import delivery, erp_event, form_post, ops_options, order, queue_event, tracking_id_for

ROOT = Path(__file__).resolve().parents[1]
PROVIDER_DIR = ROOT / "layers" / "orderbridge" / "orderbridge" / "providers"

#: Per provider: settings and a catalog entry that build a request, the secret it needs, and a
#: bad setting with the key the refusal must name.
CASES: dict[str, dict[str, Any]] = {
    "bigcommerce": {
        "settings": {"store_hash": "abc123"},
        "catalog": {"MUG-001": {"product_id": 112}},
        "secret": {"access_token": "bc-value-1"},
        "bad_settings": [({}, "store_hash"), ({"store_hash": "abc123", "status_id": -1}, "status_id")],
        "bad_entry": ({"product_id": "one"}, "product_id"),
    },
    "komerza": {
        "settings": {"store_id": "st_demo", "gateway": "stripe"},
        "catalog": {
            "MUG-001": {
                "productId": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
                "variantId": "5d7e1f2a-1b2c-4d3e-9f40-0a1b2c3d4e5f",
            }
        },
        "secret": {"api_key": "kz-value-1"},
        "bad_settings": [
            ({"store_id": "st_demo", "mode": "invoice"}, "mode"),
            ({"store_id": "st_demo", "lookup_days": 0}, "lookup_days"),
        ],
        "bad_entry": ({"productId": "3c90c3cc-0d44-4b50-8888-8dd25736052a"}, "variantId"),
    },
    "lana": {
        "settings": {"shop_id": "sh_EQzGqWoY"},
        "catalog": {"MUG-001": {"variant_id": "va_Mug00001"}},
        "secret": {"token": "ln-value-1"},
        "bad_settings": [
            ({"shop_id": "EQzGqWoY"}, "shop_id"),
            ({"shop_id": "sh_a", "currencies": ["XX1"]}, "currencies"),
        ],
        "bad_entry": ({"variant": "va_Mug00001"}, "variant"),
    },
    "threekit": {
        "settings": {"org_id": "org-42"},
        "catalog": {"MUG-001": {"configurationId": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"}},
        "secret": {"token": "tk-value-1"},
        "bad_settings": [
            ({"status": "Shipped"}, "status"),
            ({"name_template": "{order_number}"}, "name_template"),
        ],
        "bad_entry": ({"configurationId": "blue-tee"}, "configurationId"),
    },
}


def _order() -> Any:
    return order(lines=[{"sku": "MUG-001", "quantity": 1}], total=None)


def _adapter(provider: str, *, settings: dict[str, Any] | None = None, catalog: dict[str, Any] | None = None):
    case = CASES[provider]
    d = delivery(
        _order(),
        provider=provider,
        settings=case["settings"] if settings is None else settings,
        catalog=case["catalog"] if catalog is None else catalog,
    )
    return get_provider_class(provider)(destination=d.destination), d


def test_every_registered_provider_has_a_case() -> None:
    assert sorted(CASES) == sorted(PROVIDERS)


# --- settings and catalog entries through their models ----------------------------------------------


@pytest.mark.parametrize("provider", sorted(CASES))
def test_the_adapters_read_no_settings_or_catalog_dict(provider: str) -> None:
    """The models are the only readers: no `settings.get(`, `settings[` or `catalog.get(` in an
    adapter module (the base's `catalog_entry()` is the one place a catalog dict is read)."""
    source = (PROVIDER_DIR / f"{provider}.py").read_text()
    found = re.findall(r"settings\.get\(|settings\[|catalog\.get\(|destination\.settings", source)
    assert found == []


@pytest.mark.parametrize("provider", sorted(CASES))
def test_the_settings_model_fills_in_the_defaults(provider: str) -> None:
    adapter, d = _adapter(provider)
    model = adapter.settings_model
    assert isinstance(adapter.settings, model)
    for name, field in model.model_fields.items():
        if name not in CASES[provider]["settings"] and not field.is_required():
            assert getattr(adapter.settings, name) == field.get_default(call_default_factory=True), name
    adapter.build_create(d)  # the case's settings and catalog build a request


@pytest.mark.parametrize(
    ("provider", "settings", "key"),
    [(p, s, k) for p, case in sorted(CASES.items()) for s, k in case["bad_settings"]],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_settings_are_refused_by_the_model_naming_the_key(
    provider: str, settings: dict, key: str
) -> None:
    adapter, d = _adapter(provider, settings=settings)  # creating the adapter never fails
    for build in (adapter.build_create, adapter.build_lookup):
        with pytest.raises(RequestRejectedError) as err:
            build(d)
        assert err.value.code == "DESTINATION_MISCONFIGURED"
        assert f"{provider} destination settings" in err.value.message and key in err.value.message


@pytest.mark.parametrize("provider", sorted(CASES))
def test_an_unknown_settings_key_is_refused_with_the_key_it_likely_means(provider: str) -> None:
    settings = dict(CASES[provider]["settings"])
    key = next(iter(settings))
    settings[key.upper()] = settings.pop(key)
    adapter, d = _adapter(provider, settings=settings)
    with pytest.raises(RequestRejectedError) as err:
        adapter.build_create(d)
    assert err.value.code == "DESTINATION_MISCONFIGURED"
    assert (
        f"unknown key {key.upper()!r}" in err.value.message and f"did you mean {key!r}" in err.value.message
    )


@pytest.mark.parametrize("provider", sorted(CASES))
def test_a_bad_catalog_entry_is_refused_by_the_model_naming_sku_and_key(provider: str) -> None:
    entry, key = CASES[provider]["bad_entry"]
    adapter, d = _adapter(provider, catalog={"MUG-001": entry})
    with pytest.raises(RequestRejectedError) as err:
        adapter.build_create(d)
    assert err.value.code == "DESTINATION_MISCONFIGURED"
    assert "catalog entry for SKU 'MUG-001'" in err.value.message and key in err.value.message


@pytest.mark.parametrize("provider", sorted(CASES))
def test_a_sku_missing_from_the_catalog_is_unknown_sku(provider: str) -> None:
    adapter, d = _adapter(provider, catalog={})
    with pytest.raises(RequestRejectedError) as err:
        adapter.build_create(d)
    assert err.value.code == "UNKNOWN_SKU" and "MUG-001" in err.value.message


# --- credentials models ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(CASES))
def test_the_credentials_model_reads_the_secret_and_hides_its_value(provider: str) -> None:
    adapter, _ = _adapter(provider)
    secret = CASES[provider]["secret"]
    [(key, value)] = secret.items()
    assert value in json.dumps(adapter.auth_headers(secret))
    read = adapter.credentials({**secret, "note": "other keys are ignored"})
    assert value not in repr(read) and value not in str(read)
    assert adapter.credentials_shape() == json.dumps({key: "..."})


@pytest.mark.parametrize("provider", sorted(CASES))
@pytest.mark.parametrize("broken", ["missing", "empty", "not a string"])
def test_a_secret_without_its_key_is_a_credentials_error_naming_the_key(provider: str, broken: str) -> None:
    adapter, _ = _adapter(provider)
    [(key, value)] = CASES[provider]["secret"].items()
    secret = {
        "missing": {"client_id": value},
        "empty": {key: ""},
        "not a string": {key: 12345},
    }[broken]
    with pytest.raises(CredentialsError) as err:
        adapter.auth_headers(secret)
    message = str(err.value)
    assert repr(key) in message and adapter.credentials_shape() in message
    assert value not in message and "12345" not in message


@pytest.mark.parametrize(
    ("provider", "secret"),
    [("bigcommerce", {"token": "bc-old"}), ("lana", {"jwt": "ln-old"})],
)
def test_the_older_key_names_are_still_read(provider: str, secret: dict[str, str]) -> None:
    adapter, _ = _adapter(provider)
    [value] = secret.values()
    assert value in json.dumps(adapter.auth_headers(secret))


@pytest.mark.parametrize("provider", sorted(CASES))
def test_a_secret_without_its_key_raises_the_malformed_error_with_its_code(provider: str) -> None:
    adapter, _ = _adapter(provider)
    with pytest.raises(CredentialsMalformedError) as err:
        adapter.auth_headers({"client_id": "x"})
    assert err.value.code == "CREDENTIALS_MALFORMED" and isinstance(err.value, CredentialsError)


# --- accepted currencies: one rule for the adapter's refusal and the configuration check --------------


@pytest.mark.parametrize(
    ("provider", "settings", "takes"),
    [
        ("bigcommerce", {"store_hash": "abc123"}, {"USD"}),
        ("bigcommerce", {"store_hash": "abc123", "currencies": ["EUR", "GBP"]}, {"EUR", "GBP"}),
        ("komerza", {"store_id": "st_demo", "gateway": "stripe", "currency": "EUR"}, {"EUR"}),
        ("lana", {"shop_id": "sh_EQzGqWoY"}, None),
        ("lana", {"shop_id": "sh_EQzGqWoY", "currencies": ["CAD"]}, {"CAD"}),
        ("threekit", {"org_id": "org-42"}, None),
    ],
)
def test_the_adapter_refuses_exactly_the_currencies_it_declares(
    provider: str, settings: dict[str, Any], takes: set[str] | None
) -> None:
    adapter, _ = _adapter(provider, settings=settings)
    assert adapter.accepted_currencies(adapter.settings) == (None if takes is None else frozenset(takes))
    for currency in ("USD", "EUR", "GBP", "CAD"):
        d = delivery(
            order(lines=[{"sku": "MUG-001", "quantity": 1}], total=None, currency=currency),
            provider=provider,
            settings=settings,
            catalog=CASES[provider]["catalog"],
        )
        if takes is None or currency in takes:
            adapter.build_create(d)
            continue
        with pytest.raises(RequestRejectedError) as err:
            adapter.build_create(d)
        assert err.value.code == "CURRENCY_NOT_SUPPORTED" and currency in err.value.message


def test_the_placeholder_is_recognised_only_as_true() -> None:
    assert is_placeholder({PLACEHOLDER_KEY: True, "token": "x"})
    for value in ({PLACEHOLDER_KEY: False}, {PLACEHOLDER_KEY: "true"}, {"token": "x"}, [], "placeholder"):
        assert not is_placeholder(value)


# --- the credential store against moto's Secrets Manager --------------------------------------------


def _secretsmanager() -> Any:
    from orderbridge import clients

    return clients.client("secretsmanager")


def _placeholder_secret(name: str) -> str:
    """A secret as the template creates it: `{"placeholder": true, "token": <random>}`; its token."""
    token = secrets.token_hex(24)
    _secretsmanager().create_secret(Name=name, SecretString=json.dumps({"placeholder": True, "token": token}))
    return token


def test_a_placeholder_secret_is_not_set_and_a_value_put_later_counts_at_once(harness) -> None:
    secret_id = f"orderbridge/providers/store-{uuid.uuid4().hex[:8]}"
    token = _placeholder_secret(secret_id)
    store = CredentialStore(max_age=300)
    for refresh in (False, True):
        with pytest.raises(CredentialsNotSetError) as err:
            store.get(secret_id, refresh=refresh)
        assert err.value.secret_id == secret_id and secret_id in str(err.value)
        assert "set its value" in str(err.value) and token not in str(err.value)
        assert isinstance(err.value, CredentialsError)
    # set: the cached placeholder is read again, so the new value counts without waiting max_age
    _secretsmanager().put_secret_value(SecretId=secret_id, SecretString=json.dumps({"access_token": "v1"}))
    assert store.get(secret_id) == {"access_token": "v1"}
    # a real value stays cached as before (rotation is picked up by the 401 re-read)
    _secretsmanager().put_secret_value(
        SecretId=secret_id, SecretString=json.dumps({"placeholder": False, "access_token": "v2"})
    )
    assert store.get(secret_id) == {"access_token": "v1"}
    assert store.get(secret_id, refresh=True) == {"placeholder": False, "access_token": "v2"}


# --- through the local system ---------------------------------------------------------------------


def test_the_local_runs_destination_secrets_are_set(harness) -> None:
    """The local run stores a real value for every destination's secret, never the placeholder a
    template secret starts with."""
    store = CredentialStore(max_age=0)
    destinations = harness.system.local_config()["destinations"]
    for name, destination in destinations.items():
        value = store.get(destination["secret_id"])  # raises CredentialsNotSetError for a placeholder
        adapter = get_provider_class(destination["provider"])
        adapter.credentials_model.model_validate(value)  # and it holds the key the adapter needs
        assert not is_placeholder(value), name


def _requests_seen(harness, provider: str) -> int:
    r = requests.get(f"{harness.sandbox}/_sandbox/{provider}/stats", timeout=10)
    r.raise_for_status()
    return int(r.json()["requests"])


def _config_with(harness, name: str, *, copy_of: str, route_of: str, secret_id: str) -> dict[str, Any]:
    """The local configuration plus destination `name` (a copy of destination `copy_of` with its
    own secret) and route `name` (a copy of route `route_of` sending to it only)."""
    config = harness.system.local_config()
    config["destinations"][name] = {**config["destinations"][copy_of], "secret_id": secret_id}
    route = json.loads(json.dumps(config["routes"][route_of]))
    route["destinations"] = [{**route["destinations"][0], "destination": name}]
    config["routes"][name] = route
    return config


def _cli(harness, capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main([*args, *ops_options(harness.system.state())])
    return code, capsys.readouterr().out


def test_a_queued_order_fails_fast_without_a_call_then_retry_delivers_it_once(
    harness, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # the CLI's tables at full width: whole tracking ids
    uid = uuid.uuid4().hex[:8]
    name = f"bc-unset-{uid}"
    secret_id = f"orderbridge/providers/{name}"
    token = _placeholder_secret(secret_id)
    harness.system.upload_config(
        _config_with(harness, name, copy_of="bc-demo", route_of="default", secret_id=secret_id)
    )
    event, tracking_id = queue_event(route=name)
    try:
        harness.take_dead_letters()
        before = _requests_seen(harness, "bigcommerce")
        created = requests.get(f"{harness.sandbox}/_sandbox/bigcommerce/stats", timeout=10).json()["creates"]
        harness.send(event)
        harness.drain(until=harness.final(tracking_id))
        [outcome] = harness.outcomes(tracking_id)
        assert outcome.status is OutcomeStatus.FAILED_PERMANENT and outcome.attempts == 1
        assert outcome.error_code == "CREDENTIALS_NOT_SET"
        message = outcome.error_message or ""
        assert secret_id in message and "set its value" in message and '{"access_token": "..."}' in message
        assert f"orderbridge retry {tracking_id}" in message and token not in message
        assert _requests_seen(harness, "bigcommerce") == before  # nothing reached the provider
        code, out = _cli(harness, capsys, "dlq", "list")
        assert code == 0 and tracking_id in out  # parked where `retry` finds it

        # the operator sets the secret, then retries: sent once, to the sandbox's account
        _secretsmanager().put_secret_value(
            SecretId=secret_id, SecretString=json.dumps({"access_token": "local-bigcommerce-token"})
        )
        code, out = _cli(harness, capsys, "retry", tracking_id)
        assert code == 0 and "redriven 1" in out, out
        harness.drain(until=harness.final(tracking_id))
        [outcome] = harness.outcomes(tracking_id)
        assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.attempts == 2
        assert len(harness.orders_with_reference(tracking_id)) == 1
        # the retry looks the order up first (as every retry does), then creates it once
        assert _requests_seen(harness, "bigcommerce") == before + 2
        stats = requests.get(f"{harness.sandbox}/_sandbox/bigcommerce/stats", timeout=10).json()
        assert stats["creates"] == created + 1
    finally:
        harness.system.upload_config()
        harness.take_dead_letters()


def test_a_checkout_form_fails_fast_without_a_call(harness) -> None:
    """Checkout mode calls the provider while the buyer waits: the same check, the same record."""
    uid = uuid.uuid4().hex[:8]
    name = f"kz-unset-{uid}"
    secret_id = f"orderbridge/providers/{name}"
    token = _placeholder_secret(secret_id)
    config = _config_with(harness, name, copy_of="komerza-demo", route_of="komerza", secret_id=secret_id)
    form_key = f"fk_unset{uid}"
    config["forms"][form_key] = {**config["forms"]["fk_komerza01"], "route": name}
    harness.system.upload_config(config)
    form = form_post()
    try:
        before = _requests_seen(harness, "komerza")
        r = harness.post(f"/forms/{form_key}", json.dumps(form), {"Content-Type": "application/json"})
        assert r.status_code in (200, 202), r.text
        tracking_id = r.json()["tracking_id"]
        assert "redirect_url" not in r.json() or not r.json()["redirect_url"]
        [outcome] = harness.outcomes(tracking_id)  # recorded before the answer: no queue needed
        assert (
            outcome.status is OutcomeStatus.FAILED_PERMANENT and outcome.error_code == "CREDENTIALS_NOT_SET"
        )
        assert secret_id in (outcome.error_message or "") and token not in (outcome.error_message or "")
        harness.drain()  # the queued copy finds the delivery finished
        assert _requests_seen(harness, "komerza") == before
    finally:
        harness.system.upload_config()
        harness.take_dead_letters()


# --- a secret of the wrong shape (issue: cached, it failed orders after it was fixed) ---------------


def _creates(harness) -> int:
    r = requests.get(f"{harness.sandbox}/_sandbox/bigcommerce/stats", timeout=10)
    r.raise_for_status()
    return int(r.json()["creates"])


def _all_final(harness, *tracking_ids: str):
    return lambda: all(harness.final(t)() for t in tracking_ids)


def test_a_secret_of_the_wrong_shape_sends_nothing_and_orders_go_through_once_it_is_fixed(harness) -> None:
    """A BigCommerce destination's secret holding Komerza's key: the order is retried
    CREDENTIALS_MALFORMED with no call. Once the operator fixes the secret, the next order goes
    through on its first try although the wrong value is still cached (a wrong shape is re-read at
    once), and the pending order goes through on its own next try: no `retry` by hand."""
    uid = uuid.uuid4().hex[:8]
    name = f"bc-shape-{uid}"
    secret_id = f"orderbridge/providers/{name}"
    wrong = secrets.token_hex(16)
    _secretsmanager().create_secret(Name=secret_id, SecretString=json.dumps({"api_key": wrong}))
    harness.system.upload_config(
        _config_with(harness, name, copy_of="bc-demo", route_of="default", secret_id=secret_id)
    )
    first, second = f"ERP-{uid}-1", f"ERP-{uid}-2"
    tid_first, tid_second = tracking_id_for("erp", first), tracking_id_for("erp", second)
    try:
        harness.take_dead_letters()
        before, created = _requests_seen(harness, "bigcommerce"), _creates(harness)
        harness.send(erp_event(route=name, external_order_id=first)[0])
        harness.drain(until=lambda: bool(harness.outcomes(tid_first)))
        [outcome] = harness.outcomes(tid_first)
        assert outcome.status is OutcomeStatus.FAILED_RETRYABLE and outcome.attempts == 1
        assert outcome.error_code == "CREDENTIALS_MALFORMED"
        message = outcome.error_message or ""
        assert secret_id in message and "wrong shape" in message and '{"access_token": "..."}' in message
        assert "nothing was sent" in message and wrong not in message
        assert _requests_seen(harness, "bigcommerce") == before  # nothing reached the provider

        # fixed while the wrong value is still cached (SECRET_MAX_AGE_SECONDS, 300 s)
        _secretsmanager().put_secret_value(
            SecretId=secret_id, SecretString=json.dumps({"access_token": "local-bigcommerce-token"})
        )
        harness.send(erp_event(route=name, external_order_id=second)[0])
        harness.drain(until=_all_final(harness, tid_first, tid_second), timeout=60)
        [outcome] = harness.outcomes(tid_second)
        assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.attempts == 1
        [outcome] = harness.outcomes(tid_first)
        assert outcome.status is OutcomeStatus.SUCCEEDED and outcome.attempts == 2
        assert [h.error_code for h in outcome.history if h.error_code] == ["CREDENTIALS_MALFORMED"]
        assert len(harness.orders_with_reference(tid_first)) == 1
        assert len(harness.orders_with_reference(tid_second)) == 1
        assert _creates(harness) == created + 2
        parked = [m["MessageAttributes"]["tracking_id"]["StringValue"] for m in harness.take_dead_letters()]
        assert tid_first not in parked  # retried by itself, never parked for a person
    finally:
        harness.system.upload_config()
        harness.take_dead_letters()


def test_a_secret_rewritten_to_the_wrong_shape_after_a_401_sends_nothing_more(harness) -> None:
    """The 401 re-read finds a secret without the key: CREDENTIALS_MALFORMED, retried, not the
    provider's refusal (the provider never saw it); the order goes through once it is fixed."""
    uid = uuid.uuid4().hex[:8]
    name = f"bc-reshape-{uid}"
    secret_id = f"orderbridge/providers/{name}"
    _secretsmanager().create_secret(
        Name=secret_id, SecretString=json.dumps({"access_token": secrets.token_hex(16)})
    )
    harness.system.upload_config(
        _config_with(harness, name, copy_of="bc-demo", route_of="default", secret_id=secret_id)
    )
    refused, pending = f"ERP-{uid}-1", f"ERP-{uid}-2"
    tid_refused, tid_pending = tracking_id_for("erp", refused), tracking_id_for("erp", pending)
    try:
        harness.take_dead_letters()
        # a token the store refuses: sent, 401, re-read (the same), sent, 401: AUTH_REFUSED, cached
        harness.send(erp_event(route=name, external_order_id=refused)[0])
        harness.drain(until=harness.final(tid_refused))
        [outcome] = harness.outcomes(tid_refused)
        assert outcome.status is OutcomeStatus.FAILED_PERMANENT and outcome.http_status == 401
        # rewritten without the key: the cached token passes the shape check, is refused, and the
        # re-read finds the wrong shape: nothing more is sent
        _secretsmanager().put_secret_value(SecretId=secret_id, SecretString=json.dumps({"api_key": "x"}))
        before = _requests_seen(harness, "bigcommerce")
        harness.send(erp_event(route=name, external_order_id=pending)[0])
        harness.drain(until=lambda: bool(harness.outcomes(tid_pending)))
        [outcome] = harness.outcomes(tid_pending)
        assert (
            outcome.status is OutcomeStatus.FAILED_RETRYABLE and outcome.error_code == "CREDENTIALS_MALFORMED"
        )
        assert _requests_seen(harness, "bigcommerce") == before + 1  # the one refused with the cached token
        _secretsmanager().put_secret_value(
            SecretId=secret_id, SecretString=json.dumps({"access_token": "local-bigcommerce-token"})
        )
        harness.drain(until=harness.final(tid_pending), timeout=60)
        [outcome] = harness.outcomes(tid_pending)
        assert (
            outcome.status is OutcomeStatus.SUCCEEDED and len(harness.orders_with_reference(tid_pending)) == 1
        )
    finally:
        harness.system.upload_config()
        harness.take_dead_letters()
