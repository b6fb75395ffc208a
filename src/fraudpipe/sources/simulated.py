"""The built-in transaction simulator as a source (the default: no external data needed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pandas as pd

from fraudpipe.sources.base import SourceError

if TYPE_CHECKING:
    from fraudpipe.simulate import Simulation

#: Which scenario made a transaction fraudulent: ground truth no real source has, so it is not
#: part of the batch (a model must never see it).
SCENARIO_COLUMN = "tx_fraud_scenario"


@dataclass(frozen=True)
class SimulatedSource:
    """One seeded simulation; its customers and terminals are side tables for distance features."""

    simulator: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "simulated"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SimulatedSource:
        return cls(dict(cfg.get("simulator") or {}))

    @cached_property
    def _simulation(self) -> Simulation:
        from fraudpipe.simulate import SimulatorConfig, simulate

        try:
            config = SimulatorConfig.from_dict(dict(self.simulator))
        except (TypeError, ValueError, KeyError) as exc:
            raise SourceError(
                "simulated source",
                f"data.simulator is not a valid simulator config: {exc}",
                "Fix conf/data/simulated.yaml or the -S override.",
            ) from None
        return simulate(config)

    def read(self) -> pd.DataFrame:
        return self._simulation.transactions.drop(columns=[SCENARIO_COLUMN], errors="ignore")

    def side_tables(self) -> dict[str, pd.DataFrame]:
        return {"customers": self._simulation.customers, "terminals": self._simulation.terminals}
