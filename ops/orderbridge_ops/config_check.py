"""`orderbridge config validate [FILE]`: will the functions load this configuration document, and
can they use it on this stack?

The document's checks and messages are the functions' loader's (`orderbridge.config.validate_document`):
every destination's provider is registered and its settings and route catalog entries are what
the adapter reads, secret ids are under the prefixes the functions' roles may read, and no
`${...}` placeholder is left (unless `--local`: the local run fills them in).

Against a stack (`--stack NAME`: its `ConfigBucket`; `--bucket B`; `--local`: the local run's
bucket) it reads the document from `s3://<bucket>/orderbridge.json` (`--key` to change), or
checks FILE as it would be once uploaded there, and checks every secret the document names:
it exists (DescribeSecret), has a value, is JSON, is not still the stack's placeholder
(`{"placeholder": true}`), and has the keys its reader needs (a provider's `credentials_model`,
a webhook source's signing key, a store API token, an import feed's auth key). A secret's value
is never printed: only its id and the key that is missing. Without any of those options nothing
is read from AWS (`config check FILE` is that offline check).

FILE against a stack is also compared with the document uploaded there: a source of both whose
effective shop changes (its `shop`, or that shop's default: `orderbridge.identity.effective_shop`)
is warned about by name (`SHOP_CHANGED`), as the orders already taken through it would no longer
be recognised as duplicates. A warning does not change the exit code.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from orderbridge.config import InvalidConfigurationError, validate_document
from orderbridge.constants import CONFIG_KEY_DEFAULT
from orderbridge.credentials import is_placeholder
from orderbridge.identity import document_shop_changes
from orderbridge.intake.signatures import signing_keys
from orderbridge.models.config import OrderbridgeConfig
from orderbridge.providers.registry import get_provider_class
from orderbridge.settings import DEFAULT_RESOURCE_PREFIX
from orderbridge_ops import render
from orderbridge_ops.connect import RESOURCE_PREFIX_PARAMETER, Connection, Target
from orderbridge_ops.errors import NOT_FOUND, OK, USAGE, OpsError

VALID, INVALID, UNREADABLE = OK, NOT_FOUND, USAGE
#: The template's logical id of the bucket the functions read `CONFIG_KEY` from.
CONFIG_BUCKET_LOGICAL_ID = "ConfigBucket"
#: The template's parameter naming the stack's resource prefix: its roles may read secrets under
#: `<prefix>/providers/`, `<prefix>/webhooks/`, `<prefix>/imports/`.

_EXIT_CODES = (
    "exit codes: 0 valid; 1 invalid (one line per problem, naming where); 2 cannot read: the file,\n"
    "the stack, the bucket or the object (`no configuration uploaded at s3://...`), or a secret\n"
    "(permissions, endpoint); problems found win over secrets that could not be read (1)"
)


class Code(StrEnum):
    """Stable codes of the secret checks, printed at the end of each problem's line."""

    SECRET_NOT_FOUND = "SECRET_NOT_FOUND"
    SECRET_DELETED = "SECRET_DELETED"
    SECRET_NO_VALUE = "SECRET_NO_VALUE"
    SECRET_NOT_JSON = "SECRET_NOT_JSON"
    SECRET_PLACEHOLDER = "SECRET_PLACEHOLDER"
    SECRET_KEY_MISSING = "SECRET_KEY_MISSING"
    SECRET_KEY_INVALID = "SECRET_KEY_INVALID"
    SECRET_UNREADABLE = "SECRET_UNREADABLE"


@dataclass(frozen=True)
class Problem:
    """One problem with a secret: where the document names it, a stable code, what is wrong."""

    where: str
    code: Code
    message: str

    @property
    def unreadable(self) -> bool:
        """Not a problem of the configuration: this CLI could not look (exit 2 if nothing else)."""
        return self.code is Code.SECRET_UNREADABLE

    def line(self) -> str:
        return f"{self.where}: {self.message} ({self.code})"


#: What a secret's reader needs from its JSON object: (code, message) per problem.
Needs = Callable[[dict[str, Any]], list[tuple[Code, str]]]


@dataclass(frozen=True)
class SecretUse:
    """One place the document names a secret (`where`: the entry and its field) and its reader's needs."""

    where: str
    secret_id: str
    needs: Needs
    plain_text: bool = False  # a non-JSON string is read as {"token": ...} (webhook signing secrets)


@dataclass(frozen=True)
class ConfigLocation:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


# --- what each reader needs --------------------------------------------------------------------------


def _nothing(value: dict[str, Any]) -> list[tuple[Code, str]]:
    return []


def _any_of(*alternatives: tuple[str, ...]) -> Needs:
    """One of the alternatives' keys must all be present and non-empty (`access_token` or `token`)."""

    def needs(value: dict[str, Any]) -> list[tuple[Code, str]]:
        if any(all(value.get(k) not in (None, "") for k in keys) for keys in alternatives):
            return []
        wanted = " or ".join(" and ".join(repr(k) for k in keys) for keys in alternatives)
        return [(Code.SECRET_KEY_MISSING, f"has no {wanted}")]

    return needs


def _signing(value: dict[str, Any]) -> list[tuple[Code, str]]:
    if signing_keys(value):
        return []
    return [(Code.SECRET_KEY_MISSING, 'has no signing key: write {"secrets": ["..."]} (or "secret")')]


def _safe_message(error: dict[str, Any]) -> str:
    """pydantic's message, unless it quotes the value (a model's own ValueError may)."""
    message = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    if isinstance(given, str | int | float) and len(str(given)) >= 4 and str(given) in message:
        return "is not valid"
    return message


def _credentials_needs(provider: str) -> Needs:
    """The keys the provider adapter's `credentials_model` requires, named by key, never by value
    (only that the secret is set when the adapter declares no model)."""
    cls = get_provider_class(provider)
    model = getattr(cls, "credentials_model", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return _nothing
    shape = cls.credentials_shape() if hasattr(cls, "credentials_shape") else model.__name__

    def needs(value: dict[str, Any]) -> list[tuple[Code, str]]:
        try:
            model.model_validate(value)
        except ValidationError as exc:
            found: list[tuple[Code, str]] = []
            for error in exc.errors(include_url=False):
                key = ".".join(str(part) for part in error["loc"])
                if error["type"] == "missing":
                    found.append((Code.SECRET_KEY_MISSING, f"has no {key!r} ({provider} reads {shape})"))
                elif error["type"] == "extra_forbidden":
                    found.append((Code.SECRET_KEY_INVALID, f"unknown key {key!r} ({provider} reads {shape})"))
                else:
                    what = f"key {key!r} " if key else ""
                    found.append((Code.SECRET_KEY_INVALID, f"{what}{_safe_message(error)} ({provider})"))
            return found
        return []

    return needs


def secret_uses(config: OrderbridgeConfig) -> list[SecretUse]:
    """Every secret the document names, with what its reader needs from it.

    Destinations: their adapter's `credentials_model`. Webhook sources: a signing key, read as
    the intake reads it. A BigCommerce source's `api_secret_id`: a BigCommerce destination's
    secret (the same store token). Import feeds: their auth's key."""
    uses: list[SecretUse] = []
    for name, destination in config.destinations.items():
        needs = _credentials_needs(destination.provider)
        uses.append(SecretUse(f"destination {name!r} secret_id", destination.secret_id, needs))
    for name, hook in config.webhooks.items():
        uses.append(
            SecretUse(f"webhook source {name!r} secret_id", hook.secret_id, _signing, plain_text=True)
        )
        api_secret_id = getattr(hook, "api_secret_id", None)
        if api_secret_id:  # the store's API token: {"access_token": ...}, as a BigCommerce destination's
            needs = _credentials_needs("bigcommerce")
            uses.append(SecretUse(f"webhook source {name!r} api_secret_id", api_secret_id, needs))
    for name, source in config.imports.items():
        secret_id = getattr(source, "secret_id", None)
        if not secret_id:
            continue
        auth = source.auth  # type: ignore[union-attr]  # only feeds have a secret_id
        if auth.type == "none":
            needs = _nothing
        elif auth.type == "basic":
            needs = _any_of(("username", "password"))
        else:
            needs = _any_of((auth.key,))
        uses.append(SecretUse(f"import source {name!r} secret_id", secret_id, needs))
    return uses


# --- reading secrets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Read:
    """A secret as read once: its parsed value, or why there is none."""

    value: Any = None
    problem: tuple[Code, str] | None = None


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Error"))


def read_secret(client: Any, secret_id: str) -> _Read:
    """DescribeSecret, then GetSecretValue: the value parsed as JSON (the text if it is not JSON)."""
    try:
        meta = client.describe_secret(SecretId=secret_id)
    except ClientError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return _Read(problem=(Code.SECRET_NOT_FOUND, "does not exist"))
        return _Read(problem=(Code.SECRET_UNREADABLE, f"cannot describe it: {_error_code(exc)}"))
    if meta.get("DeletedDate"):
        return _Read(
            problem=(Code.SECRET_DELETED, "is scheduled for deletion (aws secretsmanager restore-secret)")
        )
    try:
        text = client.get_secret_value(SecretId=secret_id).get("SecretString")
    except ClientError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return _Read(problem=(Code.SECRET_NO_VALUE, "has no value (aws secretsmanager put-secret-value)"))
        return _Read(problem=(Code.SECRET_UNREADABLE, f"cannot read its value: {_error_code(exc)}"))
    if text is None:
        return _Read(problem=(Code.SECRET_NOT_JSON, "holds binary data, not a JSON string"))
    try:
        return _Read(value=json.loads(text))
    except ValueError:
        return _Read(value=text)


def check_secrets(client: Any, uses: list[SecretUse]) -> list[Problem]:
    """Each secret read once; each use's problems named by its place in the document."""
    reads: dict[str, _Read] = {}
    problems: list[Problem] = []
    for use in uses:
        if use.secret_id not in reads:
            reads[use.secret_id] = read_secret(client, use.secret_id)
        read = reads[use.secret_id]
        where = f"{use.where} {use.secret_id!r}"
        if read.problem is not None:
            problems.append(Problem(where, *read.problem))
            continue
        value = read.value
        if isinstance(value, str) and use.plain_text:
            value = {"token": value}  # as orderbridge.credentials.CredentialStore reads a plain string
        if isinstance(value, str):
            problems.append(Problem(where, Code.SECRET_NOT_JSON, "is not JSON (write a JSON object)"))
            continue
        if not isinstance(value, dict):
            problems.append(Problem(where, Code.SECRET_NOT_JSON, "is JSON but not an object"))
            continue
        if is_placeholder(value):  # the functions' rule: {"placeholder": true} is not set
            problems.append(
                Problem(
                    where,
                    Code.SECRET_PLACEHOLDER,
                    "still holds the placeholder the deploy created: "
                    "set its value (aws secretsmanager put-secret-value)",
                )
            )
            continue
        problems += [Problem(where, code, message) for code, message in use.needs(value)]
    return problems


# --- the command -----------------------------------------------------------------------------------


def add_commands(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "config",
        help="Check a configuration document (and, on a stack, its secrets) before it is used.",
        description="Check a configuration document (and, on a stack, its secrets) before it is used.",
    )
    sub = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    cmd = sub.add_parser(
        "validate",
        help="Validate a document as the functions will; on a stack, the uploaded one and its secrets.",
        description=__doc__,
        epilog="examples:\n"
        "  orderbridge config validate prod.json                        # offline\n"
        "  orderbridge config validate --stack orderbridge-prod         # the uploaded document\n"
        "  orderbridge config validate prod.json --stack orderbridge-prod --region eu-west-1\n"
        "  orderbridge config validate --bucket my-config --key orderbridge.json\n"
        "  orderbridge config validate --local                          # the local run's\n\n"
        "where the document is: FILE if given, else s3://<bucket>/<key>; the bucket is --bucket,\n"
        f"else --stack's {CONFIG_BUCKET_LOGICAL_ID} resource, else --local's; key: --key, "
        f"default {CONFIG_KEY_DEFAULT}\n\n" + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("file", metavar="FILE", type=Path, nargs="?", help="the JSON configuration document")
    where = cmd.add_argument_group("where (any of these also checks the secrets)")
    where.add_argument(
        "--stack",
        "--stack-name",
        dest="stack_name",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help=f"a deployed stack: its {CONFIG_BUCKET_LOGICAL_ID} resource "
        "(cloudformation:DescribeStackResource)",
    )
    where.add_argument("--bucket", help="the config bucket, named directly")
    where.add_argument("--key", help=f"the document's key in the bucket (default: {CONFIG_KEY_DEFAULT})")
    where.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the local run (.orderbridge-local.json); ${...} placeholders are allowed in FILE",
    )
    where.add_argument("--region", default=argparse.SUPPRESS, help="AWS region")
    where.add_argument("--profile", default=argparse.SUPPRESS, help="AWS named profile")
    where.add_argument("--endpoint-url", default=argparse.SUPPRESS, help="AWS endpoint (e.g. moto's server)")
    where.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    cmd.add_argument(
        "--resource-prefix",
        metavar="PREFIX",
        help="the stack's resource prefix: its roles may read secrets under PREFIX/providers/, "
        "PREFIX/webhooks/, PREFIX/imports/ (default: --stack's "
        f"{RESOURCE_PREFIX_PARAMETER} parameter, else {DEFAULT_RESOURCE_PREFIX})",
    )
    cmd.add_argument("--offline", dest="no_aws", action="store_true", help="no AWS access, even with --local")
    cmd.set_defaults(offline=cmd_validate)

    cmd = sub.add_parser(
        "check",
        help="Validate a document as the functions will, with no AWS access (config validate --offline).",
        description="Validate a configuration document as the functions will, with no AWS access: "
        "`config validate FILE --offline`.",
        epilog="examples:\n"
        "  orderbridge config check prod.json\n"
        "  orderbridge config check config/local.json --local\n\n" + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("file", metavar="FILE", type=Path, help="the JSON configuration document")
    cmd.add_argument(
        "--local",
        dest="for_local",
        action="store_true",
        help="the document is for the local run, which fills in ${...} placeholders",
    )
    cmd.add_argument("--resource-prefix", metavar="PREFIX", help=argparse.SUPPRESS)
    cmd.set_defaults(offline=cmd_validate, offline_only=True)


def cmd_validate(args: argparse.Namespace, console: Console, errors: Console) -> int:
    """`config validate` / `config check`: prints the verdict, returns VALID, INVALID or UNREADABLE."""
    local = bool(getattr(args, "for_local", False) or getattr(args, "local", False))
    remote = not (getattr(args, "offline_only", False) or getattr(args, "no_aws", False)) and bool(
        args.stack_name or getattr(args, "bucket", None) or args.local
    )
    if getattr(args, "key", None) and not remote:
        render.error(errors, "--key needs --stack, --bucket or --local")
        return USAGE
    if args.file is None and not remote:
        render.error(errors, "nothing to validate", "give FILE, or --stack NAME / --bucket B / --local")
        return USAGE
    if not remote:
        prefix = args.resource_prefix or DEFAULT_RESOURCE_PREFIX
        return _offline(args.file, local=local, prefix=prefix, console=console, errors=errors)
    target = Target(
        region=args.region,
        profile=args.profile,
        endpoint_url=args.endpoint_url,
        stack_name=args.stack_name,
        local=args.local,
    )
    try:
        conn = Connection(target)
        location = locate(conn, args)
        prefix = args.resource_prefix or conn.resource_prefix()
        uploaded: bytes | None = None
        if args.file is not None:
            text: str | bytes = _read_file(args.file)
            label = f"{args.file} (for {location})"
            uploaded = _uploaded_or_none(conn, location)
        else:
            text = read_document(conn, location)
            label = str(location)
        return _remote(
            conn, text, label, local=local, prefix=prefix, console=console, errors=errors, uploaded=uploaded
        )
    except OpsError as exc:
        render.error(errors, exc.message, exc.hint)
        return exc.exit_code
    except (BotoCoreError, ClientError) as exc:
        if args.debug:
            raise
        from orderbridge_ops.cli import _describe_aws_error  # one wording for AWS failures

        message, hint = _describe_aws_error(exc, conn_hint=target)
        render.error(errors, message, hint)
        return UNREADABLE


def locate(conn: Connection, args: argparse.Namespace) -> ConfigLocation:
    """Where the functions read the document: `--bucket`, else the stack's ConfigBucket, else the
    local run's; the key is `--key`, else the functions' CONFIG_KEY default. OpsError (exit 2) for
    a stack that does not exist or has no ConfigBucket."""
    key = args.key or CONFIG_KEY_DEFAULT
    if args.bucket:
        return ConfigLocation(args.bucket, key)
    if args.stack_name:
        try:
            detail = conn.client("cloudformation").describe_stack_resource(
                StackName=args.stack_name, LogicalResourceId=CONFIG_BUCKET_LOGICAL_ID
            )["StackResourceDetail"]
        except ClientError as exc:
            message = str(exc.response.get("Error", {}).get("Message", ""))
            if _error_code(exc) == "ValidationError" and "does not exist" in message:
                raise OpsError(
                    f"stack {args.stack_name!r} or its {CONFIG_BUCKET_LOGICAL_ID} does not exist: {message}",
                    exit_code=UNREADABLE,
                    hint="check --stack, --region and --profile (or name the bucket with --bucket)",
                ) from None
            raise
        return ConfigLocation(detail["PhysicalResourceId"], key)
    bucket = conn.state.get("config_bucket")
    if not bucket:
        raise OpsError(
            "--local: the state file names no config_bucket",
            exit_code=UNREADABLE,
            hint="restart the local run (`make up`), or pass --bucket",
        )
    return ConfigLocation(bucket, key)


def read_document(conn: Connection, location: ConfigLocation) -> bytes:
    """The object's bytes; OpsError (exit 2) when there is none, no bucket, or no permission."""
    try:
        return conn.client("s3").get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    except ClientError as exc:
        code = _error_code(exc)
        if code in ("NoSuchKey", "404"):
            raise OpsError(
                f"no configuration uploaded at {location}",
                exit_code=UNREADABLE,
                hint=f"validate FILE with the same options, then: aws s3 cp FILE {location}",
            ) from None
        if code == "NoSuchBucket":
            raise OpsError(f"no bucket {location.bucket!r}", exit_code=UNREADABLE) from None
        if code in ("AccessDenied", "403"):
            raise OpsError(
                f"access denied reading {location}",
                exit_code=UNREADABLE,
                hint="check --profile: it needs s3:GetObject (and s3:ListBucket, or a missing object "
                "answers AccessDenied too)",
            ) from None
        raise


def _uploaded_or_none(conn: Connection, location: ConfigLocation) -> bytes | None:
    """The document uploaded at `location`, or None when there is none yet (nothing to compare)."""
    try:
        return read_document(conn, location)
    except OpsError:
        return None


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OpsError(f"cannot read {path}: {exc}", exit_code=UNREADABLE) from None


def _offline(path: Path, *, local: bool, prefix: str, console: Console, errors: Console) -> int:
    try:
        text = _read_file(path)
    except OpsError as exc:
        render.error(errors, exc.message)
        return exc.exit_code
    config = _checked(text, str(path), local=local, prefix=prefix, errors=errors)
    if config is None:
        return INVALID
    console.print(f"{escape(str(path))}: valid{' for the local run' if local else ''} ({_counts(config)})")
    return VALID


def _remote(
    conn: Connection,
    text: str | bytes,
    label: str,
    *,
    local: bool,
    prefix: str,
    console: Console,
    errors: Console,
    uploaded: bytes | None = None,
) -> int:
    config = _checked(text, label, local=local, prefix=prefix, errors=errors)
    if config is None:
        render.note(errors, "  (secrets are checked once the document is valid)")
        return INVALID
    changes = document_shop_changes(uploaded, text, resource_prefix=prefix) if uploaded is not None else []
    for change in changes:
        errors.print(Text.assemble(("warning: ", "bold yellow"), change.message()), soft_wrap=True)
    uses = secret_uses(config)
    problems = check_secrets(conn.client("secretsmanager"), uses)
    if problems:
        count = len(problems)
        render.error(errors, f"{label}: {count} secret problem{'s' if count != 1 else ''}")
        for problem in problems:
            errors.print(f"  - {escape(problem.line())}", soft_wrap=True)
        return UNREADABLE if all(p.unreadable for p in problems) else INVALID
    secrets = len({use.secret_id for use in uses})
    console.print(f"{escape(label)}: valid ({_counts(config)}); its {secrets} secrets are set")
    return VALID


def _checked(
    text: str | bytes, label: str, *, local: bool, prefix: str, errors: Console
) -> OrderbridgeConfig | None:
    """The validated document, or None after printing one line per problem."""
    try:
        return validate_document(text, local=local, resource_prefix=prefix)
    except InvalidConfigurationError as exc:
        count = len(exc.problems)
        render.error(
            errors, f"{label}: {count} problem{'s' if count != 1 else ''}; the functions would refuse it"
        )
        for problem in exc.problems:
            errors.print(f"  - {escape(problem)}", soft_wrap=True)
        return None


def _counts(config: OrderbridgeConfig) -> str:
    return (
        f"{len(config.destinations)} destinations, {len(config.routes)} routes, {len(config.forms)} forms, "
        f"{len(config.webhooks)} webhook sources, {len(config.imports)} import sources"
    )
