"""The buyer's email check (our own, in place of EmailStr + email_validator): same answers, same error."""

import pytest
from pydantic import TypeAdapter, ValidationError

from orderbridge.models.order import Buyer, Email

EMAIL = TypeAdapter(Email)


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("ada@example.com", "ada@example.com"),
        ("Ada.Lovelace+orders@Example.COM", "Ada.Lovelace+orders@example.com"),  # the domain only
        ("user%x@mail.example.co.uk", "user%x@mail.example.co.uk"),
        ("ü@exämple.de", "ü@exämple.de"),
        ("a@EXÄMPLE.de", "a@exämple.de"),
        ("a@xn--exmple-cua.de", "a@exämple.de"),  # A-label shown as Unicode, like EmailStr
        ("a@127.0.0.1.com", "a@127.0.0.1.com"),
        ("Ada Lovelace <ada@Example.com>", "ada@example.com"),
        ('"Ada L." <ada@example.com>', "ada@example.com"),
        ("  ada@example.com\n", "ada@example.com"),
        ("a" * 65 + "@example.com", "a" * 65 + "@example.com"),
    ],
)
def test_accepted_and_normalized(given, normalized):
    assert EMAIL.validate_python(given) == normalized


@pytest.mark.parametrize(
    "given",
    [
        "nope",
        "@example.com",
        "a@",
        "a@b",  # no dot
        "a@localhost",
        "a@@example.com",
        "a@b@example.com",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a b@example.com",
        "a\u00a0b@example.com",
        "a\t@example.com",
        '"quoted"@example.com',
        "a@-x.com",
        "a@x-.com",
        "a@ex--ample.com",
        "a@ex_ample.com",
        "a@exa mple.com",
        "a@.example.com",
        "a@example..com",
        "a@example.com.",
        "a@x.123",  # the TLD must end with a letter
        "a@1.2.3.4",
        "a@[1.2.3.4]",
        "a@x.test",
        "a@x.local",
        "a@sub.example.invalid",
        "a@xn--zz.com",
        "a@" + "b" * 64 + ".com",  # a label over 63
        "a@" + ("b" * 63 + ".") * 4 + "com",  # a domain over 253
        "x" * 250 + "@example.com",  # an address over 254
        "a" * 3000,
    ],
)
def test_refused_with_emailstrs_error(given):
    with pytest.raises(ValidationError) as err:
        Buyer.model_validate({"email": given})
    (error,) = err.value.errors()
    assert error["loc"] == ("email",)
    assert error["type"] == "value_error"
    assert error["msg"].startswith("value is not a valid email address: ")


def test_schema_still_says_email():
    # optional (a phone-only buyer), and still an email when given
    email = Buyer.model_json_schema()["properties"]["email"]
    assert {"format": "email", "type": "string"} in email["anyOf"]
