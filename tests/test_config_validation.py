"""The configuration is checked before it is used (issue 15): provider settings and catalog entries
against each provider's models, provider names, secret prefixes, placeholders; the store keeps the
last good document; `orderbridge config check` and `orderbridge-local up` say what is wrong."""

from __future__ import annotations

import copy
import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from orderbridge.config import ConfigStore, InvalidConfigurationError, validate_document
from orderbridge.exceptions import ConfigurationError
from orderbridge.providers.registry import get_provider_class, provider_models, registered_providers
from orderbridge_ops.cli import main as ops_main

ROOT = Path(__file__).resolve().parents[1]
LOCAL_TEXT = (ROOT / "config" / "local.json").read_text()
GOOD: dict[str, Any] = json.loads(LOCAL_TEXT.replace("${SANDBOX_URL}", "http://127.0.0.1:4010"))
GOOD.pop("local")  # the local run's block (orderbridge_local.setup), never uploaded


def doc() -> dict[str, Any]:
    return copy.deepcopy(GOOD)


def problems(document: dict[str, Any] | str, **kwargs: Any) -> list[str]:
    with pytest.raises(InvalidConfigurationError) as err:
        validate_document(document, **kwargs)
    return err.value.problems


def test_the_sample_is_valid_locally_and_only_its_placeholders_stop_it_on_aws() -> None:
    assert validate_document(LOCAL_TEXT, local=True).destinations.keys() == GOOD["destinations"].keys()
    assert validate_document(GOOD)
    found = problems(LOCAL_TEXT)
    assert found and all("${SANDBOX_URL} left in the document" in p or p.startswith("local:") for p in found)
    assert any(p.startswith("destinations.bc-demo.base_url") for p in found)


@pytest.mark.parametrize("name", registered_providers())
def test_every_provider_declares_its_settings_and_catalog_models(name: str) -> None:
    cls = get_provider_class(name)
    assert provider_models(name) == (cls.settings_model, cls.catalog_entry_model)
    assert cls.settings_model is not None and cls.catalog_entry_model is not None


def test_a_catalog_key_typo_is_an_error_naming_route_destination_sku_and_both_keys() -> None:
    d = doc()
    d["routes"]["default"]["destinations"][0]["catalog"]["MUG-001"] = {"productid": 112}
    [*found] = problems(d)
    typo = next(p for p in found if "unknown key" in p)
    assert "route 'default' destination 'bc-demo' catalog SKU 'MUG-001'" in typo
    assert "'productid'" in typo and "did you mean 'product_id'" in typo


def test_each_providers_catalog_keys_used_today_are_accepted() -> None:
    d = doc()
    cat = d["routes"]["default"]["destinations"][0]["catalog"]
    cat["TEE-BLUE-M"] = {"product_id": "111", "variant_id": 77, "options": {"Engraving": 123}}
    cat["MUG-001"] = {"product_id": 112, "product_options": [{"id": 5, "value": "red"}]}
    komerza = d["routes"]["komerza"]["destinations"][0]["catalog"]
    first = next(iter(komerza.values()))
    komerza["SNAKE"] = {"product_id": first["productId"], "variant_id": first["variantId"]}
    d["routes"]["threekit"]["destinations"][0]["catalog"]["SNAKE"] = {
        "configuration_id": "0b5a9a57-7f0e-4d8e-9d0a-2f6e3c1b7a11"
    }
    d["routes"]["lana"]["destinations"][0]["catalog"]["CAMEL"] = {"variantId": "va_X", "price": "1.50"}
    validate_document(d)


def test_a_settings_key_typo_and_a_bad_value_name_the_destination() -> None:
    d = doc()
    d["destinations"]["komerza-demo"]["settings"]["on_price_diference"] = "refuse"
    d["destinations"]["lana-demo"]["settings"]["shop_id"] = "LocalDemo"
    d["destinations"]["bc-demo"]["settings"]["currencies"] = ["USD", "XXY"]
    found = "\n".join(problems(d))
    assert "destination 'komerza-demo' settings: unknown key 'on_price_diference'" in found
    assert "did you mean 'on_price_difference'" in found
    assert "destination 'lana-demo' settings shop_id" in found
    assert "destination 'bc-demo' settings currencies" in found and "XXY" in found


def test_a_catalog_price_finer_than_the_komerza_store_currency_is_refused() -> None:
    d = doc()
    d["destinations"]["komerza-demo"]["settings"]["currency"] = "JPY"
    found = "\n".join(problems(d))
    assert "destination 'komerza-demo'" in found and "JPY" in found


def test_an_unknown_provider_is_refused_naming_the_known_ones() -> None:
    d = doc()
    d["destinations"]["lana-demo"]["provider"] = "lanna"
    [found] = problems(d)
    assert "destination 'lana-demo': unknown provider 'lanna'" in found
    assert "known: bigcommerce, komerza, lana, threekit" in found


@pytest.mark.parametrize(
    ("section", "name", "prefix"),
    [
        ("destinations", "bc-demo", "orderbridge/providers/"),
        ("webhooks", "shopify-demo", "orderbridge/webhooks/"),
    ],
)
def test_a_secret_outside_the_roles_prefix_is_refused(section: str, name: str, prefix: str) -> None:
    d = doc()
    d[section][name]["secret_id"] = "demo/bigcommerce"
    [found] = problems(d)
    assert f"{name!r}: secret_id 'demo/bigcommerce' must start with {prefix!r}" in found
    assert "AccessDenied on AWS" in found


def test_an_import_secret_outside_its_prefix_is_refused() -> None:
    d = doc()
    d["imports"]["demo-feed"]["secret_id"] = "feeds/demo"
    assert any("orderbridge/imports/" in p for p in problems(d))


def test_a_placeholder_left_is_an_error_for_aws_and_an_unknown_one_even_locally() -> None:
    d = doc()
    d["destinations"]["threekit-demo"]["settings"]["store_name"] = "${STORE}"
    [found] = problems(d)
    assert found.startswith("destinations.threekit-demo.settings.store_name: ${STORE} left in the document")
    [found] = problems(d, local=True)
    assert "${STORE} is not filled in by the local run" in found


def test_not_json_and_not_an_object_are_problems_too() -> None:
    assert problems("{")[0].startswith("not JSON")
    assert "JSON object" in problems("[]")[0]


# --- the store: a refused document never replaces a good one --------------------------------------


class FakeS3:
    def __init__(self, body: str) -> None:
        self.body = body

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.body.encode())}


def test_the_store_keeps_the_last_good_document(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s3 = FakeS3(json.dumps(GOOD))
    store = ConfigStore(bucket="b", key="config.json", max_age=0, s3_client=s3)
    good = store.load()
    bad = doc()
    # a typo in one form's route must not take the other forms (or anything else) down
    bad["forms"]["fk_demo0001"]["route"] = "defualt"
    s3.body = json.dumps(bad)
    with caplog.at_level(logging.ERROR, logger="orderbridge.config.store"):
        assert store.load() is good
        assert store.load() is good
    refused = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refused) == 1, "logged once per refused document"
    assert "form 'fk_demo0001' names unknown route 'defualt'" in refused[0].getMessage()
    assert "keeping the last good one" in refused[0].getMessage()
    assert store.load().forms["fk_komerza01"] == good.forms["fk_komerza01"]
    fixed = doc()
    fixed["forms"]["fk_demo0001"]["allowed_origins"] = ["https://shop.example"]
    s3.body = json.dumps(fixed)
    assert store.load().forms["fk_demo0001"].allowed_origins == ["https://shop.example"]


def test_the_store_without_a_good_document_raises_naming_the_problem() -> None:
    bad = doc()
    bad["destinations"]["bc-demo"]["provider"] = "bigcomerce"
    store = ConfigStore(bucket="b", key="config.json", max_age=0, s3_client=FakeS3(json.dumps(bad)))
    with pytest.raises(ConfigurationError, match="unknown provider 'bigcomerce'"):
        store.load()


# --- orderbridge config check ----------------------------------------------------------------------


def test_config_check_passes_the_local_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert ops_main(["config", "check", str(ROOT / "config" / "local.json"), "--local"]) == 0
    assert "valid for the local run" in capsys.readouterr().out


def test_config_check_fails_a_bad_document_with_the_loaders_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = doc()
    d["routes"]["default"]["destinations"][0]["catalog"]["MUG-001"] = {"productid": 112}
    d["destinations"]["lana-demo"]["provider"] = "lanna"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    assert ops_main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "unknown provider 'lanna'" in err and "did you mean 'product_id'" in err
    assert ops_main(["config", "check", str(ROOT / "config" / "local.json")]) == 1
    assert "${SANDBOX_URL} left in the document" in capsys.readouterr().err
    assert ops_main(["config", "check", str(tmp_path / "missing.json")]) == 2


# --- orderbridge-local up: nothing starts with a bad local configuration ----------------------------


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path


def test_the_local_files_as_committed_are_valid() -> None:
    from orderbridge_local.system import check_local_files

    assert check_local_files() == []


def test_a_secret_missing_from_the_local_block_and_a_broken_sandbox_account_are_reported(
    local_root: Path,
) -> None:
    from orderbridge_local.system import check_local_files

    document = json.loads((local_root / "config" / "local.json").read_text())
    del document["local"]["secrets"]["orderbridge/webhooks/stripe-demo"]
    document["local"]["sandboxes"]["lana"]["accounts"]["sh_LocalDemo"]["token"] = "not-a-jwt"
    (local_root / "config" / "local.json").write_text(json.dumps(document))
    found = check_local_files(local_root)
    assert any("names secret 'orderbridge/webhooks/stripe-demo', which has no value" in p for p in found)
    assert any(p.startswith("local.json: sandbox account lana/sh_LocalDemo:") for p in found)


def test_up_refuses_to_start_with_an_invalid_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orderbridge_local import cli

    monkeypatch.setattr(cli, "check_local_files", lambda *_: ["config/local.json: destination 'x': bad"])
    monkeypatch.setattr(cli, "LocalSystem", None)  # starting anything would fail loudly
    assert cli.main(["up"]) == 1
    err = capsys.readouterr().err
    assert "nothing was started" in err and "destination 'x': bad" in err


def test_two_webhook_sources_may_not_share_a_signing_secret():
    """Issue 16: one delivery posted to two sources sharing a secret was valid at both: two orders."""
    import copy
    import json
    from pathlib import Path

    from orderbridge.config.check import InvalidConfigurationError, validate_document

    document = json.loads((Path(__file__).resolve().parents[1] / "config" / "local.json").read_text())
    shared = copy.deepcopy(document)
    shared["webhooks"]["copy-of-shopify"] = dict(shared["webhooks"]["shopify-demo"])
    with pytest.raises(InvalidConfigurationError) as refused:
        validate_document(shared, local=True)
    assert any("share secret_id" in p and "copy-of-shopify" in p for p in refused.value.problems)
    validate_document(document, local=True)  # the sample, one secret per source, is fine


# --- cross-checks between valid parts (orderbridge.config.check.cross_problems) ----------------------


@pytest.mark.parametrize("local", [False, True])
def test_destinations_of_different_providers_may_not_share_a_secret(local: bool) -> None:
    """Each provider reads its own keys from its secret: one secret for a BigCommerce and a Komerza
    destination is the wrong shape for one of them (and the local run derived it twice)."""
    d = doc() if not local else json.loads(LOCAL_TEXT)
    shared = d["destinations"]["bc-demo"]["secret_id"]
    d["destinations"]["komerza-demo"]["secret_id"] = shared
    [found] = problems(d, local=local)
    assert "destinations 'bc-demo' (bigcommerce) and 'komerza-demo' (komerza)" in found
    assert f"share secret_id {shared!r}" in found
    assert 'bigcommerce {"access_token": "..."}' in found and 'komerza {"api_key": "..."}' in found


def test_destinations_of_one_provider_may_share_a_secret() -> None:
    """One account behind two destinations (say, two store settings) reads one secret."""
    d = doc()
    d["destinations"]["bc-second"] = {
        **d["destinations"]["bc-demo"],
        "settings": {**d["destinations"]["bc-demo"]["settings"], "status_id": 11},
    }
    d["routes"]["second"] = {
        "destinations": [{**d["routes"]["default"]["destinations"][0], "destination": "bc-second"}]
    }
    assert (
        validate_document(d).destinations["bc-second"].secret_id == d["destinations"]["bc-demo"]["secret_id"]
    )


def _priced_in(d: dict[str, Any], route: str, currency: str) -> None:
    for item in d["routes"][route]["items"].values():
        item["currency"] = currency


@pytest.mark.parametrize(
    ("route", "destination", "settings", "takes"),
    [
        ("default", "bc-demo", {"currencies": ["USD"]}, "USD"),
        ("default", "bc-demo", {"currencies": "GBP"}, "GBP"),  # one code is a list of one
        ("komerza", "komerza-demo", {"currency": "USD"}, "USD"),
    ],
)
def test_a_route_priced_in_a_currency_a_destination_does_not_take_is_refused(
    route: str, destination: str, settings: dict[str, Any], takes: str
) -> None:
    """Every form order on such a route would be refused CURRENCY_NOT_SUPPORTED (a 422 the buyer
    cannot fix): the document is refused instead, naming the route, the destination and both."""
    d = doc()
    d["destinations"][destination]["settings"].update(settings)
    _priced_in(d, route, "EUR")
    [found] = problems(d)
    assert f"route {route!r}: its items are priced in EUR" in found
    assert f"destination {destination!r}" in found and f"accept {takes})" in found
    assert "CURRENCY_NOT_SUPPORTED" in found


def test_a_route_priced_in_a_currency_every_destination_takes_is_valid() -> None:
    d = doc()
    d["destinations"]["bc-demo"]["settings"]["currencies"] = ["USD", "EUR"]
    _priced_in(d, "default", "EUR")
    assert validate_document(d).routes["default"].currency == "EUR"
    # a Lana shop without `currencies` takes any, and a route without prices carries none
    d = doc()
    d["destinations"]["lana-demo"]["settings"].pop("currencies")
    lana = d["routes"]["lana"]
    lana["items"] = {
        sku: {"name": sku, "unit_price": "500", "currency": "JPY"}
        for sku in lana["destinations"][0]["catalog"]
    }
    assert validate_document(d).routes["lana"].currency == "JPY"
    d["destinations"]["lana-demo"]["settings"]["currencies"] = ["USD"]
    [found] = problems(d)
    assert "route 'lana': its items are priced in JPY" in found and "'lana-demo' (lana)" in found


@pytest.mark.parametrize("name", registered_providers())
def test_the_configuration_check_reads_each_providers_own_currency_rule(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check asks the adapter (`accepted_currencies`), the method its requests are refused by:
    an adapter that took no currency would make every priced route to it invalid."""
    cls = get_provider_class(name)
    monkeypatch.setattr(cls, "accepted_currencies", classmethod(lambda _cls, _settings: frozenset()))
    d = doc()
    for other in d["routes"].values():
        other["items"] = {}
    destination = next(n for n, dest in d["destinations"].items() if dest["provider"] == name)
    d["routes"]["priced"] = {
        "destinations": [{"destination": destination, "catalog": {}}],
        "items": {},
    }
    validate_document(d)  # no priced items: no currency to check
    route = next(r for r in d["routes"].values() if r["destinations"][0]["destination"] == destination)
    d["routes"]["priced"]["destinations"][0]["catalog"] = route["destinations"][0]["catalog"]
    sku = next(iter(route["destinations"][0]["catalog"]))
    d["routes"]["priced"]["items"] = {sku: {"name": sku, "unit_price": "1", "currency": "USD"}}
    [found] = problems(d)
    assert f"route 'priced': its items are priced in USD, which destination {destination!r}" in found
    assert "accept none)" in found
