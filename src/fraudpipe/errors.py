"""The one family of errors that mean "the input or the configuration is wrong", not "a bug".

`fraudpipe.pipeline.stage.run` turns any `PipelineError` into one line, `stage '<name>' failed: …`, and
exit code 1; anything else keeps its traceback, because then the code is at fault. Every module
raises from this family, chosen by what the user has to change.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit


class PipelineError(Exception):
    """Bad input or configuration; the message names the key, column, rows or rule and the fix."""


class ConfigError(PipelineError):
    """A configuration value or key is wrong (the message names the full key path and the value)."""


class DataError(PipelineError):
    """The data cannot be used as configured: a missing column, a wrong type, an empty period."""


class BatchValidationError(DataError):
    """Great Expectations rejected the batch as a whole; one message per failed expectation."""

    def __init__(self, failures: list[str] | tuple[str, ...]) -> None:
        self.failures = tuple(failures)
        super().__init__("batch validation failed: " + "; ".join(self.failures))


class BundleError(PipelineError):
    """A model bundle is missing, damaged, of another format, or does not fit the features."""


class GateFailed(PipelineError):
    """The quality gate rejected the model: which metric, its value and the minimum."""


class MonitoringAlert(PipelineError):
    """Monitoring raised an alert and `monitor.fail_on_alert` asks for the stage to fail on it."""


class OutputError(PipelineError):
    """An output cannot be written (permissions, a full disk, a directory where a file goes): which
    path, what the system said, what to check."""


class SourceError(PipelineError):
    """A source could not deliver its batch: which source, what failed, what to do about it."""

    def __init__(self, where: str, what: str, todo: str = "") -> None:
        self.where, self.what, self.todo = where, what, todo
        message = f"{where}: {what.rstrip('.')}."
        super().__init__(f"{message} {todo}".rstrip())


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
