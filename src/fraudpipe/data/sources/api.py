"""An HTTP JSON API, page by page, with timeouts and retries that back off.

Transient failures (connection errors, timeouts, 5xx, 429) are retried with exponential backoff;
anything else fails at once, naming the URL, the attempts and the last status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import Field, field_validator

from fraudpipe.config import rule_error
from fraudpipe.data.sources.base import SourceConfig, SourceError, redact_url

if TYPE_CHECKING:  # httpx is imported where an API source is used: every config check imports this module
    import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


class ApiConfig(SourceConfig):
    """conf/data/api.yaml: a paginated JSON API; `fraudpipe snapshot` pages through it into ``snapshot``."""

    source: Literal["api"]
    url: str
    #: key of the list of records in each page; null: the page is the list
    records_key: str | None
    #: key of the next page's URL; null: one page only
    next_key: str | None
    #: query parameters of the first request
    params: dict[str, Any]
    #: sent as ``page_size_param`` when both are set
    page_size: int | None = Field(ge=1)
    page_size_param: str | None
    timeout_s: float = Field(gt=0)
    max_retries: int = Field(ge=0)
    #: seconds before the first retry; doubles after each
    backoff_s: float = Field(ge=0)
    headers: dict[str, str]
    snapshot: str = Field(min_length=1)
    datetime_format: str | None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        import httpx

        try:
            scheme = httpx.URL(url).scheme
        except httpx.InvalidURL:
            scheme = ""
        if scheme not in ("http", "https"):
            raise rule_error("must be an http(s) URL", redact_url(url))
        return url


@dataclass(frozen=True)
class ApiSource:
    """Every record of a paginated JSON API.

    Each page is an object whose ``records_key`` holds a list of records and whose ``next_key``
    holds the URL (absolute, or relative to the page) of the next page; the last page has none.
    The next URL is followed as given, so it must carry its own query parameters.
    """

    url: str
    records_key: str | None
    next_key: str | None
    params: Mapping[str, Any]
    page_size: int | None
    page_size_param: str | None
    timeout_s: float
    max_retries: int
    backoff_s: float
    headers: Mapping[str, str]
    kind: str = "api"

    @classmethod
    def from_config(cls, config: ApiConfig) -> ApiSource:
        return cls(
            url=config.url,
            records_key=config.records_key,
            next_key=config.next_key,
            params=config.params,
            page_size=config.page_size,
            page_size_param=config.page_size_param,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            headers=config.headers,
        )

    @property
    def where(self) -> str:
        return f"api source {redact_url(self.url)}"

    def read(self) -> pd.DataFrame:
        import httpx

        records: list[dict[str, Any]] = []
        params = dict(self.params)
        if self.page_size and self.page_size_param:
            params[self.page_size_param] = self.page_size
        try:
            with httpx.Client(timeout=self.timeout_s, headers=dict(self.headers), follow_redirects=True) as client:
                url: httpx.URL | None = httpx.URL(self.url).copy_merge_params(params)
                seen: set[str] = set()
                while url is not None:
                    if str(url) in seen:
                        loop = f"pagination loops back to {redact_url(str(url))}"
                        raise SourceError(self.where, loop, "Fix the API's next links.")
                    seen.add(str(url))
                    page = self._page(client, url)
                    records.extend(self._records(page, url))
                    url = self._next(page, url)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:  # data.url is checked: a next link
            raise SourceError(self.where, f"a page links to an unusable URL: {exc}", "Fix the API's next links.") from None
        return pd.DataFrame.from_records(records)

    def _page(self, client: httpx.Client, url: httpx.URL) -> Any:
        """One page as parsed JSON, after retrying transient failures."""
        import httpx

        attempts = self.max_retries + 1
        last, wait = "", 0.0
        for attempt in range(attempts):
            if attempt:
                time.sleep(max(wait, self.backoff_s * 2 ** (attempt - 1)))
            try:
                response = client.get(url)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                last, wait = f"{type(exc).__name__}: {str(exc) or 'no detail'}", 0.0
                continue
            if response.status_code in RETRY_STATUSES:
                last, wait = f"HTTP {response.status_code}", _retry_after(response)
                continue
            if response.is_error:
                raise SourceError(
                    self.where,
                    f"GET {redact_url(str(url))} answered HTTP {response.status_code}: {response.text[:200]!r}",
                    "Check data.url, data.params and data.headers (an error other than 429/5xx is not retried).",
                )
            try:
                return json.loads(response.content, object_pairs_hook=_unique_keys)
            except _RepeatedKey as exc:
                raise SourceError(
                    self.where,
                    f"GET {redact_url(str(url))} returned an object with the key {exc.key!r} twice; cannot tell which value to use",
                    "Fix the API's records: each key once.",
                ) from None
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise SourceError(
                    self.where,
                    f"GET {redact_url(str(url))} did not return JSON (content-type "
                    f"{response.headers.get('content-type', 'none')!r}, body starts {response.content[:80]!r})",
                    "Check that data.url is the API endpoint and not a web page.",
                ) from None
        raise SourceError(
            self.where,
            f"GET {redact_url(str(url))} failed {attempts} times "
            f"(1 try + data.max_retries={self.max_retries}); last: {last}",
            "Check that the API is up; raise data.max_retries, data.backoff_s or data.timeout_s if it is only slow.",
        )

    def _records(self, page: Any, url: httpx.URL) -> list[dict[str, Any]]:
        if self.records_key is None:
            records = page
        elif isinstance(page, dict) and self.records_key in page:
            records = page[self.records_key]
        else:
            found = f"keys {sorted(page)}" if isinstance(page, dict) else f"a JSON {type(page).__name__}"
            raise SourceError(
                self.where,
                f"the page {redact_url(str(url))} has no {self.records_key!r} list (found {found})",
                "Set data.records_key to the key that holds the records (null if the page is the list itself).",
            )
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SourceError(
                self.where,
                f"the records of page {redact_url(str(url))} are not a list of JSON objects",
                "Check data.records_key.",
            )
        return records

    def _next(self, page: Any, url: httpx.URL) -> httpx.URL | None:
        link = page.get(self.next_key) if self.next_key and isinstance(page, dict) else None
        if link in (None, ""):
            return None
        if not isinstance(link, str):
            bad = f"the {self.next_key!r} of page {redact_url(str(url))} is not a URL: {link!r}"
            raise SourceError(self.where, bad, "Check data.next_key.")
        return url.join(link)

    def side_tables(self) -> dict[str, pd.DataFrame]:
        return {}


def _retry_after(response: httpx.Response) -> float:
    """The server's requested wait in seconds (only the delta-seconds form), capped."""
    try:
        return min(max(float(response.headers.get("retry-after", 0)), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return 0.0


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key that appears twice (json keeps the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out
