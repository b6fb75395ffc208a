"""``monitor`` configuration (conf/monitor/): what is compared, each check's thresholds, and whether
an alert fails the stage. Its own module so that `check_config` parses it without the statistics."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from fraudpipe.config import AS_TUPLE, Config, rule_error
from fraudpipe.errors import redact_url
from fraudpipe.metrics import IntervalConfig
from fraudpipe.paths import PREDICTIONS
from fraudpipe.servicelog import LogLocation, is_redis_url

Share = Annotated[float, Field(gt=0, le=1)]
Positive = Annotated[float, Field(gt=0)]


class FeatureChecks(Config):
    """``monitor.features``: how each feature's test is chosen, its thresholds, the dataset rule."""

    large_sample: int = Field(ge=1)
    categorical_max_values: int = Field(ge=2)
    p_value: Annotated[float, Field(gt=0, lt=1)]
    wasserstein: Positive
    jensen_shannon: Positive
    psi_bins: int = Field(ge=2)
    drift_share: Share


class PredictionChecks(Config):
    """``monitor.prediction``: when the score distribution or the alert rate has drifted."""

    psi: Positive
    wasserstein: Positive
    alert_rate_change: Positive


class PerformanceChecks(Config):
    """``monitor.performance``: the relative drop of average precision that alerts, and how many
    labelled frauds the figure needs before it means anything (fewer: null, never an alert)."""

    max_drop: Share
    min_frauds: int = Field(ge=1)


class SegmentChecks(Config):
    """``monitor.segments``: amount band edges, the location grid, frauds a group needs for its recall,
    and the gap between two groups of a segment (recall or alert rate) that the report flags."""

    amount_bands: Annotated[tuple[Positive, ...], AS_TUPLE]
    region_grid: int = Field(ge=1)
    min_frauds: int = Field(ge=1)
    max_gap: Share

    @model_validator(mode="after")
    def _bands_increase(self) -> Self:
        if list(self.amount_bands) != sorted(set(self.amount_bands)):
            raise rule_error("must be strictly increasing", list(self.amount_bands), key="amount_bands")
        return self


class ChallengerChecks(Config):
    """``monitor.challenger``: when the challenger the service scored in the shadow (`fraudpipe serve
    --shadow`) replaces the champion. Judged on the labelled shadow rows: a verdict needs
    ``min_frauds`` labelled frauds over ``min_days`` days (fewer: undecided); promotion needs the
    paired interval of the AP difference above ``ap_margin``, the card precision@k difference's
    interval not below ``-cp_tolerance``, and the challenger's alert rate inside the band
    ``monitor.prediction.alert_rate_change`` draws around the training period's. ``threshold``: the
    challenger's decision threshold, when the log carries its score but not its alert (null: the
    logged alert). ``interval``: the paired bootstrap over days (level, resamples, seed)."""

    min_frauds: int = Field(ge=1)
    min_days: int = Field(ge=2)
    ap_margin: Annotated[float, Field(ge=0, lt=1)]
    cp_tolerance: Annotated[float, Field(ge=0, le=1)]
    threshold: Annotated[float, Field(ge=0, le=1)] | None
    interval: IntervalConfig


REDIS_INPUT = (
    "a Redis log is no file DVC can hash: set monitor.window_inputs.service_log to a local file (e.g. "
    "data/interim/transactions.parquet, a dependency already) and rerun monitor with `dvc repro --force "
    "--single-item monitor` to read the log anew"
)


class WindowInputs(Config):
    """``monitor.window_inputs``: what each kind of current window is read from, by ``current``."""

    predictions: str = Field(min_length=1)
    service_log: str = Field(min_length=1)


class MonitorConfig(LogLocation):
    """conf/monitor/: what is compared, the thresholds, and whether an alert fails the stage.

    ``current`` names the window watched (`monitor_window`): ``predictions``, the live period as
    `infer` scored it, or ``service_log``, what the service scored, from its log (``log`` and
    ``redis_prefix``: ``LogLocation``, the keys and reader of ``data=service_log``).
    ``window_input`` is what that window is read from (conf/ derives it from ``current``): dvc.yaml's
    dependency, so that using the service reruns monitor only when monitor watches its log. A Redis
    log is no file DVC can hash: its ``window_input`` is a local file instead, and a rerun is forced.
    """

    current: Literal["predictions", "service_log"]
    window_input: str
    window_inputs: WindowInputs
    fail_on_alert: bool
    features: FeatureChecks
    prediction: PredictionChecks
    performance: PerformanceChecks
    segments: SegmentChecks
    challenger: ChallengerChecks
    calibration_bins: int = Field(ge=2)
    report_max_plots: int = Field(ge=0)

    @model_validator(mode="after")
    def _input_follows_current(self) -> Self:
        reads = PREDICTIONS.as_posix() if self.current == "predictions" else self.log
        if self.current == "service_log" and is_redis_url(self.log):
            if is_redis_url(self.window_input):
                raise rule_error(f"{REDIS_INPUT}, not the Redis URL", redact_url(self.window_input), key="window_input")
            return self
        if self.window_input != reads:
            raise rule_error(
                f"must be what monitor.current={self.current} reads ({reads!r}): leave it to conf/monitor/",
                self.window_input,
                key="window_input",
            )
        return self
