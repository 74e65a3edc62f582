"""The HTTP "orders since" feed: one page per call, auth from Secrets Manager, cursor or since paging.

`GET <url>?updated_since=<watermark>&limit=<n>[&cursor=<c>]` answering JSON with the orders at
`paging.items` and the next page's cursor at `paging.next_cursor`. Credentials are read through
the cached credential store and re-read once on 401/403 (the secret may have been rotated); they
never appear in errors or logs.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from orderbridge.credentials import CredentialStore
from orderbridge.exceptions import CredentialsError
from orderbridge.imports.config import FeedSource
from orderbridge.imports.mapping import lookup


class FeedError(Exception):
    """A page could not be fetched or read. `cursor_rejected`: the feed refused a stored cursor."""

    def __init__(self, message: str, *, cursor_rejected: bool = False) -> None:
        super().__init__(message)
        self.cursor_rejected = cursor_rejected


@dataclass(frozen=True)
class FeedPage:
    items: list[Any]
    next_cursor: str | None  # style cursor: the body's cursor; style link: the next page's URL
    total_pages: int | None = None  # from paging.total_pages_header


_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def next_link(header: str | None, base: str) -> str | None:
    """The `rel="next"` target of an HTTP Link header (RFC 8288), absolute, or None."""
    if not header:
        return None
    for match in _LINK.finditer(header):
        params = match.group(2)
        rels = re.findall(r'rel\s*=\s*"?([^";]+)"?', params)
        if any("next" in r.split() for r in rels):
            return urljoin(base, match.group(1).strip())
    return None


def same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def with_overlap(since: str | None, seconds: int) -> str | None:
    """The watermark moved back by `seconds` (clock skew between the feed's writers)."""
    if since is None or seconds <= 0:
        return since
    parsed = parse_time(since)
    if parsed is None:
        return since
    return (parsed - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class FeedClient:
    """Fetches pages of one feed source."""

    def __init__(
        self, *, credentials: CredentialStore, session: requests.Session | None = None, user_agent: str = ""
    ) -> None:
        self.credentials = credentials
        self.session = session or requests.Session()
        self.user_agent = user_agent or "orderbridge-importer"

    def page(
        self,
        source: FeedSource,
        *,
        since: str | None,
        cursor: str | None,
        page: int | None = None,
    ) -> FeedPage:
        """One page. `cursor` is the body cursor (style cursor) or the next page's URL (style link:
        followed as given, on the configured host only); `page` the page number (styles page, since)."""
        paging = source.paging
        url = str(source.url)
        params: dict[str, str] | None = dict(paging.params)
        if paging.style == "link" and cursor:
            if not same_origin(cursor, url):
                raise FeedError("the feed's next link points to another host; not followed")
            # the link carries the query: Shopify refuses filters beside page_info
            url, params = cursor, None
        else:
            if since:
                params[paging.since_param] = since
            if cursor:
                params[paging.cursor_param] = cursor
            if paging.page_size_param:
                params[paging.page_size_param] = str(paging.page_size)
            if page is not None and paging.page_param:
                params[paging.page_param] = str(page)
        response = None
        for refresh in (False, True):
            headers = {
                "Accept": "application/json",
                "User-Agent": self.user_agent,
                **self._auth(source, refresh),
            }
            try:
                response = self.session.get(
                    url, params=params, headers=headers, timeout=source.timeout_seconds
                )
            except requests.RequestException as exc:
                raise FeedError(f"feed unreachable: {type(exc).__name__}") from None
            if response.status_code not in (401, 403) or source.auth.type == "none":
                break
        assert response is not None
        if response.status_code in (401, 403):
            raise FeedError(f"feed refused the credentials (HTTP {response.status_code})")
        if (cursor or (page or 1) > 1) and response.status_code in (400, 404, 410, 422):
            # an expired cursor or link, or a page number past the end (orders went away): a new pass
            raise FeedError(f"feed refused the cursor (HTTP {response.status_code})", cursor_rejected=True)
        if response.status_code != 200:
            raise FeedError(f"feed answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise FeedError("feed answered with something that is not JSON") from None
        items = lookup(body, paging.items, dotted=True) if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise FeedError(f"feed page has no array at {paging.items!r}")
        next_cursor = None
        if paging.style == "cursor" and paging.next_cursor and isinstance(body, dict):
            found = lookup(body, paging.next_cursor, dotted=True)
            next_cursor = str(found) if found not in (None, "") else None
        elif paging.style == "link":
            next_cursor = next_link(response.headers.get("Link"), url)
        total_pages = None
        if paging.total_pages_header:
            raw = response.headers.get(paging.total_pages_header)
            if raw is not None:
                try:
                    total_pages = int(raw.strip())
                except ValueError:
                    raise FeedError(f"feed header {paging.total_pages_header} is not a number") from None
        return FeedPage(items=items, next_cursor=next_cursor, total_pages=total_pages)

    def _auth(self, source: FeedSource, refresh: bool) -> dict[str, str]:
        auth = source.auth
        if auth.type == "none" or source.secret_id is None:
            return {}
        try:
            secret = self.credentials.get(source.secret_id, refresh=refresh)
        except CredentialsError as exc:
            raise FeedError(str(exc)) from None
        if auth.type == "basic":
            pair = f"{secret.get('username', '')}:{secret.get('password', '')}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        value = secret.get(auth.key)
        if not value:
            raise FeedError(f"secret {source.secret_id!r} has no {auth.key!r}")
        if auth.type == "bearer":
            return {"Authorization": f"Bearer {value}"}
        return {auth.header: str(value)}
