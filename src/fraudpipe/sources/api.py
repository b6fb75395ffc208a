"""An HTTP JSON API, page by page, with timeouts and retries that back off.

Transient failures (connection errors, timeouts, 5xx, 429) are retried with exponential backoff;
anything else fails at once, naming the URL, the attempts and the last status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd

from fraudpipe.sources.base import SourceError, redact_url, require

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class ApiSource:
    """Every record of a paginated JSON API.

    Each page is an object whose ``records_key`` holds a list of records and whose ``next_key``
    holds the URL (absolute, or relative to the page) of the next page; the last page has none.
    The next URL is followed as given, so it must carry its own query parameters.
    """

    url: str
    records_key: str | None = "records"
    next_key: str | None = "next"
    params: Mapping[str, Any] = field(default_factory=dict)
    page_size: int | None = None
    page_size_param: str | None = None
    timeout_s: float = 10.0
    max_retries: int = 4
    backoff_s: float = 0.5
    headers: Mapping[str, str] = field(default_factory=dict)
    kind: str = "api"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ApiSource:
        url = str(require(cfg, "url", "api source"))
        page_size = cfg.get("page_size")
        return cls(
            url=url,
            records_key=cfg.get("records_key", "records"),  # absent: the default; null: the page is the list
            next_key=cfg.get("next_key", "next"),
            params=dict(cfg.get("params") or {}),
            page_size=int(page_size) if page_size else None,
            page_size_param=cfg.get("page_size_param"),
            timeout_s=float(cfg.get("timeout_s", 10.0)),
            max_retries=max(0, int(cfg.get("max_retries", 4))),
            backoff_s=float(cfg.get("backoff_s", 0.5)),
            headers={str(k): str(v) for k, v in (cfg.get("headers") or {}).items()},
        )

    @property
    def where(self) -> str:
        return f"api source {redact_url(self.url)}"

    def read(self) -> pd.DataFrame:
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
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise SourceError(self.where, f"the URL is not usable: {exc}", "Set data.url to an http(s) URL.") from None
        return pd.DataFrame.from_records(records)

    def _page(self, client: httpx.Client, url: httpx.URL) -> Any:
        """One page as parsed JSON, after retrying transient failures."""
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
                return response.json()
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
