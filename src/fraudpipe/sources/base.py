"""What every source shares: the contract, its one error type, and secret-free descriptions.

A source only fetches a raw batch with its own column names; mapping onto the transaction
contract and parsing types happens afterwards in `fraudpipe.conform`, so one bad cell becomes a
quarantined row there instead of a failed read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit

import pandas as pd

from fraudpipe.errors import SourceError


@runtime_checkable
class Source(Protocol):
    kind: str

    def read(self) -> pd.DataFrame:
        """The raw batch, with the source's own column names."""
        ...

    def side_tables(self) -> dict[str, pd.DataFrame]:
        """Extra tables written next to the transactions ({} except for the simulator)."""
        ...


@dataclass(frozen=True)
class SnapshotResult:
    path: Path
    rows: int
    changed: bool  # the file's bytes differ from before (False: every later stage is skipped)


_SECRET_QUERY_KEY = re.compile(r"pass|secret|token|key|sig|auth|credential", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its password and secret-looking query values replaced by ``***``.

    Error messages end up in CI logs and issue trackers, so they must never carry credentials.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_QUERY_KEY.search(k) else v) for k, v in pairs], safe="*")
    # Replace in place: rebuilding with urlunsplit would turn sqlite:////abs/path into sqlite://abs/path.
    redacted = url.replace(f"//{parts.netloc}", f"//{netloc}", 1) if netloc != parts.netloc else url
    return redacted.replace(f"?{parts.query}", f"?{query}", 1) if query != parts.query else redacted


def require(cfg: Mapping[str, Any], key: str, where: str) -> Any:
    """``cfg[key]``, or a SourceError naming the missing ``data.<key>`` setting."""
    value = cfg.get(key)
    if value is None or value == "":
        raise SourceError(where, f"the setting data.{key} is missing", f"Set it in conf/data/ or with -S data.{key}=...")
    return value


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: drivers append SQL and background links."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
