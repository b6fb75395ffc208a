"""What a transaction must satisfy before it is scored and added to the state, besides its shape.

- Its amount: at most ``--max-amount``.
- Its time: not older than the retention window (``--late-days``); not past the wall clock
  (``--max-future-seconds``); not more than ``--max-time-jump-seconds`` past the newest
  transaction seen. The last rule is what keeps one request from forgetting the state: the state
  forgets what is older than its window before the newest transaction, so a transaction dated years
  ahead would move that window past everything held. A move to a new period is an operator's act
  (``POST /v1/admin/period``), never a side effect of a score request.
- Room for it: a transaction of a customer (terminal) the state does not hold adds a key, and the
  state holds at most ``--max-state-customers`` (``--max-state-terminals``); at the cap such a
  transaction gets a 503 (one log line when the cap is reached), while those of known customers at
  known terminals are still scored. Counting keys rather than the process's memory: the count is
  the same for both stores (the Redis state's memory is not the worker's), does not depend on the
  allocator returning memory, and maps to memory by a measured cost per key.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta

from fraudpipe.errors import DataError
from fraudpipe.serve.config import ServeConfig
from fraudpipe.serve.stores.base import Prepared, Transaction


class Refused(DataError):
    """A well-formed request the service cannot accept: the HTTP status and the field at fault."""

    def __init__(self, status: int, field: str, message: str) -> None:
        self.status, self.field, self.message = status, field, message
        super().__init__(f"{field}: {message}")


def iso(when: datetime | int) -> str:
    """A time as the service's messages write it (naive UTC, ISO 8601); ints are epoch seconds."""
    if isinstance(when, int):
        when = datetime(1970, 1, 1) + timedelta(seconds=when)
    return when.isoformat()


def check_amount_and_time(config: ServeConfig, tx: Transaction, found: Prepared) -> None:
    """The amount, then the time against the retention window, the wall clock and the newest seen."""
    if tx.tx_amount > config.max_amount:
        raise Refused(422, "tx_amount", f"must be <= {config.max_amount:g} (--max-amount), got {tx.tx_amount!r}")
    earliest = found.earliest_exact
    if earliest is not None and tx.t < earliest:
        raise Refused(
            422,
            "tx_datetime",
            (
                f"{iso(tx.tx_datetime)} is older than the retention window: the service scores a transaction up to "
                f"{config.late_days} day(s) after newer ones (--late-days), so the earliest accepted now is "
                f"{iso(earliest)}; an older one could not get the features training would give it"
            ),
        )
    if tx.t > time.time() + config.max_future_seconds:
        raise Refused(
            422,
            "tx_datetime",
            f"{iso(tx.tx_datetime)} is in the future (more than "
            f"{config.max_future_seconds} s after this server's clock, --max-future-seconds)",
        )
    jump = config.max_time_jump_seconds
    if found.newest is not None and tx.t > found.newest + jump:
        raise Refused(
            422,
            "tx_datetime",
            f"{iso(tx.tx_datetime)} is more than {jump} s after the newest transaction seen ({iso(found.newest)}; "
            "--max-time-jump-seconds): one transaction may not move the service's clock that far, since the "
            "history older than the retention window before it would be forgotten; to resume the stream in a new "
            "period, an operator moves the clock with POST /v1/admin/period",
        )


class Capacity:
    """The caps on the state's keys, and the one log line when one is reached."""

    def __init__(self, config: ServeConfig) -> None:
        self.caps = {"customers": config.max_state_customers, "terminals": config.max_state_terminals}
        self._full: set[str] = set()  # the caps reached and logged (logged again once below, then reached)

    def check(self, found: Prepared) -> None:
        """Refuse a transaction that would add a key past a cap; known customers at known terminals pass."""
        for what, new, held in (
            ("customers", found.new_customer, found.customers),
            ("terminals", found.new_terminal, found.terminals),
        ):
            if not new:
                continue
            cap = self.caps[what]
            if held < cap:
                self._full.discard(what)
                continue
            flag = f"--max-state-{what}"
            message = (
                f"the state holds {held:,} {what}, its cap ({flag} {cap:,}): a transaction of a new "
                f"{what[:-1]} is refused so that the service's memory stays bounded (transactions of known "
                f"customers at known terminals are still scored); raise {flag}, or wait for the retention "
                "window to forget old ones"
            )
            if what not in self._full:
                self._full.add(what)
                print(f"fraudpipe serve: {message}", file=sys.stderr, flush=True)
            raise Refused(503, f"{what[:-1]}_id", message)


def check_retry(before: Transaction, now: Transaction) -> None:
    """A retry (a transaction_id scored before) must resend the same transaction."""
    names = ("customer_id", "terminal_id", "tx_datetime", "tx_amount", "coordinates")
    differ = [
        f"{n}: {getattr(before, n)!r} then {getattr(now, n)!r}" for n in names if getattr(before, n) != getattr(now, n)
    ]
    if differ:
        raise Refused(
            409,
            "transaction_id",
            f"{before.transaction_id} was scored with other values ({'; '.join(differ)}): "
            "a retry must resend the same transaction; a new transaction needs a new transaction_id",
        )
