"""The Lua scripts every change of the shared state runs as (``*.lua`` beside this module, package data).

Redis runs a script atomically, so two workers racing on one transaction_id see one order. The
pruning (``prune.lua``) is a function, not a script: it is prepended to the scripts that prune.
"""

from __future__ import annotations

from importlib.resources import files


def _read(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


_PRUNE = _read("prune.lua")
#: Add a scored transaction (and prune once a day of data has passed).
ADD = _PRUNE + _read("add.lua")
#: Read everything scoring a transaction needs (one call instead of a pipeline of a dozen commands).
PREPARE = _read("prepare.lua")
#: Set a transaction's label.
LABEL = _read("label.lua")
#: Prune now (before an export).
PRUNE_NOW = _PRUNE + _read("prune_now.lua")
#: Move the clock to a new period (the operator's action).
PERIOD = _read("period.lua")
#: Release the seeding lock if this worker still holds it.
RELEASE = _read("release.lua")
