"""Fitting a fraud model, choosing its alert threshold, and the model bundle that evaluation and scoring load.

- `config`: `ModelConfig`, the conf/model/ group.
- `estimators/`: the registry, one spec per estimator (parameters, fit, predict, file format).
- `fit`: standardise, weight the classes, fit the configured spec.
- `threshold`: the alert threshold rules.
- `bundle`: `Bundle` and its files (save, load, format checks); `read_bundle_metadata` reads what a
  bundle says without loading its model.
- `training`: `train_bundle`, which ties them together on a training period.
- `engines`: which models each engine can train, checked from the configuration alone.

The predictor used right after training is the one that is saved and loaded, so what `evaluate`
measures and what online scoring serves are the same code. The names the stages and the scorer
use are importable from here.
"""

from fraudpipe.model.bundle import (
    Bundle,
    BundleFacts,
    BundleMetadata,
    load_bundle,
    read_bundle_metadata,
    save_bundle,
    with_features_config,
)
from fraudpipe.model.config import ModelConfig
from fraudpipe.model.training import fitted_on, train_bundle, training_summary

__all__ = [
    "Bundle",
    "BundleFacts",
    "BundleMetadata",
    "ModelConfig",
    "fitted_on",
    "load_bundle",
    "read_bundle_metadata",
    "save_bundle",
    "train_bundle",
    "training_summary",
    "with_features_config",
]
