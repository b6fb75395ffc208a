"""The built-in transaction simulator as a source (the default: no external data needed)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import pandas as pd

from fraudpipe.data.simulate import Simulation, SimulatorConfig, simulate
from fraudpipe.data.sources.base import SourceConfig

#: Which scenario made a transaction fraudulent: ground truth no real source has, so it is not
#: part of the batch (a model must never see it).
SCENARIO_COLUMN = "tx_fraud_scenario"


class SimulatedConfig(SourceConfig):
    """conf/data/simulated.yaml: the simulator's settings (`fraudpipe.data.simulate`)."""

    source: Literal["simulated"]
    simulator: SimulatorConfig

    @property
    def datetime_format(self) -> None:
        """The simulator writes datetimes, not text: nothing to parse."""
        return None


@dataclass(frozen=True)
class SimulatedSource:
    """One seeded simulation; its customers and terminals are side tables for distance features."""

    simulator: SimulatorConfig
    kind: str = "simulated"

    @classmethod
    def from_config(cls, config: SimulatedConfig) -> SimulatedSource:
        return cls(config.simulator)

    @cached_property
    def _simulation(self) -> Simulation:
        return simulate(self.simulator)

    def read(self) -> pd.DataFrame:
        return self._simulation.transactions.drop(columns=[SCENARIO_COLUMN], errors="ignore")

    def side_tables(self) -> dict[str, pd.DataFrame]:
        return {"customers": self._simulation.customers, "terminals": self._simulation.terminals}
