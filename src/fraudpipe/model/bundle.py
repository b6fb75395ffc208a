"""The model bundle: the directory `train` writes to models/bundle/ and every scorer loads.

Three files, never a pickle: bundle.json (format version, ordered feature list, threshold,
standardiser, metadata; ``features_config``, when the train stage recorded it, is the features
config the training table was built with, so that a scorer keeping another online state knows to
build one for it: ``serve.sides``), the model in its estimator's own format (bundle.json's `model` entry
names it), and SHA256SUMS (`sha256sum` format) over both, written last. Loading verifies the sums
first, so a truncated or tampered bundle is refused before any of it is parsed, then checks
everything it is about to trust and refuses the rest with a BundleError. The version that scores
carry is the estimator name and the first 12 hex digits of SHA256SUMS' own sha256: the same
model files give the same version on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudpipe.contract import feature_columns
from fraudpipe.errors import BundleError, ConfigError
from fraudpipe.features.definitions import FeatureConfig, feature_names
from fraudpipe.io import write_json
from fraudpipe.model.estimators import SPECS, Predictor
from fraudpipe.model.fit import standardize

BUNDLE_FORMAT = 1
BUNDLE_FILE = "bundle.json"
CHECKSUM_FILE = "SHA256SUMS"
#: The top-level keys of bundle.json, in the order training writes them.
METADATA_KEYS = (
    "format_version",
    "name",
    "estimator",
    "features",
    "threshold",
    "threshold_selection",
    "standardizer",
    "model",
    "params",
    "estimator_params",
    "feature_importance",
    "training",
    "library_versions",
)
#: Optional (after METADATA_KEYS): the features config of the training table (``with_features_config``).
FEATURES_CONFIG = "features_config"


class BundleFacts:
    """What bundle.json says about a bundle, whether its model is loaded (`Bundle`) or not
    (`BundleMetadata`)."""

    metadata: Mapping[str, Any]
    version: str

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.metadata["features"])

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @property
    def features_config(self) -> FeatureConfig | None:
        """The features config the model was trained on (None: not recorded, a bundle of before)."""
        raw = self.metadata.get(FEATURES_CONFIG)
        return None if raw is None else FeatureConfig.parse(raw, FEATURES_CONFIG)

    @property
    def feature_importance(self) -> dict[str, float]:
        return dict(self.metadata["feature_importance"])

    def check_features(self, names: Sequence[str]) -> None:
        """Refuse to score features other than those the model was trained on, in that order."""
        names, expected = list(names), list(self.features)
        if names == expected:
            return
        missing = [f for f in expected if f not in names]
        extra = [f for f in names if f not in expected]
        detail = (
            f"missing {missing}, unexpected {extra}"
            if missing or extra
            else f"same names in a different order: {names}"
        )
        raise BundleError(f"feature list differs from the bundle's ({len(expected)} features {expected}): {detail}")


@dataclass(frozen=True)
class BundleMetadata(BundleFacts):
    """A bundle's checked bundle.json and version without its model: what a stage that reads scores
    rather than computing them needs, without importing the estimator's library."""

    metadata: Mapping[str, Any]
    version: str


@dataclass(frozen=True)
class Bundle(BundleFacts):
    """A trained model ready to score: feature order, standardiser, predictor, threshold, metadata."""

    metadata: Mapping[str, Any]
    predictor: Predictor
    mean: np.ndarray | None
    scale: np.ndarray | None
    #: "<name>-<12 hex digits>" once saved or loaded (see the module docstring); "unsaved" before.
    version: str = "unsaved"

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(fraud) per row of a 2-D array whose columns are `features`, in order."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise BundleError(
                f"expected a 2-D array with {len(self.features)} columns {list(self.features)}, got shape {X.shape}"
            )
        return self.predictor.predict(standardize(X, self.mean, self.scale))

    def predict_row(self, row: np.ndarray) -> float:
        """P(fraud) of one feature row (1-D, `features` order): the serving path, no shape checks."""
        return float(self.predictor.predict(standardize(row[np.newaxis, :], self.mean, self.scale))[0])

    def score(self, table: pd.DataFrame) -> np.ndarray:
        """P(fraud) for every row of a feature table, after checking its features."""
        self.check_features(feature_columns(table))
        return self.predict_proba(table[list(self.features)].to_numpy(dtype=np.float64))


def with_features_config(bundle: Bundle, config: FeatureConfig) -> Bundle:
    """``bundle`` recording the features config its training table was built with (the train stage)."""
    if list(bundle.features) != feature_names(config):
        raise BundleError(
            f"the model's features {list(bundle.features)} are not those of the features config "
            f"{feature_names(config)}: the training table was not built with it"
        )
    return dataclasses.replace(bundle, metadata={**bundle.metadata, FEATURES_CONFIG: config.to_dict()})


def save_bundle(bundle: Bundle, directory: str | Path) -> str:
    """Write the bundle's files into `directory` (use fraudpipe.io.atomic_dir around it), the
    checksums last; returns the version."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bundle.predictor.save(directory)
    write_json(bundle.metadata, directory / BUNDLE_FILE)
    return _version(bundle.name, write_checksums(directory))


def write_checksums(directory: Path) -> str:
    """SHA256SUMS over every other file of ``directory``; returns its text."""
    names = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != CHECKSUM_FILE)
    sums = "".join(f"{_sha256(directory / name)}  {name}\n" for name in names)
    (directory / CHECKSUM_FILE).write_text(sums, encoding="utf-8")
    return sums


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _version(name: str, sums: str) -> str:
    return f"{name}-{hashlib.sha256(sums.encode('utf-8')).hexdigest()[:12]}"


def _verify_checksums(directory: Path) -> str:
    """The SHA256SUMS text after checking every file it lists, and that it lists every file."""
    path = directory / CHECKSUM_FILE
    if not path.is_file():
        raise BundleError(f"{path} is missing: {directory} is not a complete bundle written by the train stage")
    sums = path.read_text(encoding="utf-8", errors="replace")
    listed: dict[str, str] = {}
    for number, line in enumerate(sums.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name or "/" in name:
            raise BundleError(f"{path}:{number}: not a `sha256sum` line: {line!r}")
        listed[name] = digest
    present = sorted(p.name for p in directory.iterdir() if p.name != CHECKSUM_FILE)
    unlisted = [n for n in present if n not in listed]
    if unlisted:
        raise BundleError(f"{directory}: unexpected file(s) {unlisted} in the bundle (not in {CHECKSUM_FILE})")
    for name, digest in listed.items():
        file = directory / name
        if not file.is_file():
            raise BundleError(f"{file} is missing from the bundle")
        if _sha256(file) != digest:
            raise BundleError(
                f"{file} does not match its sha256 in {CHECKSUM_FILE}: the bundle was changed or truncated "
                "after training; rerun the train stage (dvc repro train)"
            )
    return sums


def read_bundle_metadata(directory: str | Path) -> BundleMetadata:
    """Check a bundle written by `save_bundle` (checksums, bundle.json, its files) and read its
    metadata, without loading the model."""
    directory = Path(directory)
    path = directory / BUNDLE_FILE
    if not path.is_file():
        raise BundleError(f"{path} does not exist: no model bundle in {directory} (run the train stage)")
    sums = _verify_checksums(directory)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format_version") != BUNDLE_FORMAT:
        raise BundleError(
            f"{path}: bundle format {meta.get('format_version')!r}, this code reads format {BUNDLE_FORMAT}"
        )
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        raise BundleError(f"{path}: missing key(s) {missing}")
    features = _features(meta["features"], path)
    _check_features_config(meta.get(FEATURES_CONFIG), features, path)
    threshold = meta["threshold"]
    if not _number(threshold):
        raise BundleError(f"{path}: threshold must be a finite number, got {threshold!r}")
    spec = SPECS.get(meta["estimator"])
    if spec is None:
        raise BundleError(f"{path}: unknown estimator {meta['estimator']!r}; this code knows {sorted(SPECS)}")
    entry = meta["model"]
    if not isinstance(entry, dict) or entry.get("format") != spec.format or entry.get("file") != spec.file:
        raise BundleError(
            f"{path}: unknown model format {entry!r} for estimator {spec.name!r}; "
            f"expected format {spec.format!r} in {spec.file!r}"
        )
    model_path = directory / spec.file
    if not model_path.is_file():
        raise BundleError(f"{model_path} is missing from the bundle")
    unexpected = sorted(p.name for p in directory.iterdir() if p.name not in (BUNDLE_FILE, spec.file, CHECKSUM_FILE))
    if unexpected:
        raise BundleError(
            f"{directory}: unexpected file(s) {unexpected} in the bundle (expected only {BUNDLE_FILE}, "
            f"{spec.file} and {CHECKSUM_FILE})"
        )
    _standardizer(meta["standardizer"], len(features), path)
    return BundleMetadata(meta, _version(str(meta["name"]), sums))


def load_bundle(directory: str | Path, nthread: int | None = None) -> Bundle:
    """Read a bundle written by `save_bundle`; `nthread` caps XGBoost's threads (one-row scoring: 1)."""
    directory = Path(directory)
    info = read_bundle_metadata(directory)
    meta = info.metadata
    spec = SPECS[meta["estimator"]]
    mean, scale = _standardizer(meta["standardizer"], len(info.features), directory / BUNDLE_FILE)
    predictor = Predictor(spec, spec.load(directory, meta["model"], len(info.features), nthread))
    return Bundle(meta, predictor, mean, scale, info.version)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _features(value: Any, path: Path) -> list[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(f, str) for f in value)
        or len(set(value)) != len(value)
    ):
        raise BundleError(f"{path}: features must be a non-empty list of distinct names, got {value!r}")
    return value


def _check_features_config(value: Any, features: list[str], path: Path) -> None:
    if value is None:
        return
    try:
        config = FeatureConfig.parse(value, FEATURES_CONFIG)
    except ConfigError as exc:
        raise BundleError(f"{path}: {FEATURES_CONFIG} does not parse: {exc}") from None
    if feature_names(config) != features:
        raise BundleError(f"{path}: {FEATURES_CONFIG} gives the features {feature_names(config)}, not {features}")


def _standardizer(value: Any, n_features: int, path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    if value is None:
        return None, None
    try:
        mean = np.array(value["mean"], dtype=np.float64)
        scale = np.array(value["scale"], dtype=np.float64)
    except (TypeError, KeyError, ValueError) as exc:
        raise BundleError(
            f'{path}: standardizer must be null or {{"mean": [...], "scale": [...]}} ({type(exc).__name__}: {exc})'
        ) from None
    if (
        mean.shape != (n_features,)
        or scale.shape != (n_features,)
        or not np.isfinite(mean).all()
        or not (np.isfinite(scale) & (scale > 0)).all()
    ):
        raise BundleError(
            f"{path}: standardizer needs {n_features} finite means and positive scales, "
            f"got shapes {mean.shape}, {scale.shape}"
        )
    return mean, scale
