"""Online features: the state a real-time scorer keeps to featurize one transaction at a time.

The definitions are those of ``fraudpipe.features.definitions`` (its docstring fixes windows, order and
ties); this package re-derives the windows from per-key histories with ``bisect`` instead of
sorted composites, and shares only the per-value formulas, so a parity test comparing the two
paths checks the windows independently.

- ``history``: one customer's and one terminal's retained transactions, the ``History`` a
  transaction's features read, ids as keys, locations.
- ``compute``: ``history_features``, the one place the online features are computed.
- ``state``: ``OnlineState``, which keeps the histories (retention, labels, lateness) and serves them.
- ``bulk``: many rows into an empty state at once (``from_history``, ``restore``).
- ``snapshot``: the state on disk (Parquet + JSON), written by featurize and read by the service.
"""

from fraudpipe.features.online.bulk import history_since
from fraudpipe.features.online.compute import history_features
from fraudpipe.features.online.history import CustomerHistory, History, TerminalHistory, to_epoch_second
from fraudpipe.features.online.snapshot import (
    FORMAT_VERSION,
    HISTORY_FILE,
    LOCATION_FILES,
    STATE_FILE,
    snapshot_identity,
)
from fraudpipe.features.online.state import OnlineState

__all__ = [
    "FORMAT_VERSION",
    "HISTORY_FILE",
    "LOCATION_FILES",
    "STATE_FILE",
    "CustomerHistory",
    "History",
    "OnlineState",
    "TerminalHistory",
    "history_features",
    "history_since",
    "snapshot_identity",
    "to_epoch_second",
]
