"""The bundle on disk: no pickle anywhere, every file in its declared format, byte-identical for
the same params and data, and a clear BundleError for anything unexpected when loading."""

from __future__ import annotations

import json
import pickle
import pickletools
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fraudpipe.errors import BundleError
from fraudpipe.features.definitions import FeatureConfig
from fraudpipe.model import Bundle, load_bundle, read_bundle_metadata, save_bundle, train_bundle, with_features_config
from fraudpipe.model.bundle import CHECKSUM_FILE, METADATA_KEYS, write_checksums
from fraudpipe.model.estimators import spec
from helpers.model import FEATURES, OPTIONS, feature_table, small_config


def looks_like_pickle(data: bytes) -> bool:
    """A pickle of any protocol: the PROTO header of protocols 2-5 at the start, a framed
    (protocol 4-5) pickle embedded anywhere, or a whole file that is one stream of pickle opcodes
    ending in STOP (protocols 0-1 have no header)."""
    if data[:1] == b"\x80" and data[1:2] in {bytes([p]) for p in range(2, 6)}:
        return True
    if b"\x80\x04\x95" in data or b"\x80\x05\x95" in data:
        return True
    try:
        ops = list(pickletools.genops(data))
    except Exception:  # not a valid opcode stream: not a pickle
        return False
    return bool(ops) and ops[-1][0].name == "STOP" and ops[-1][2] == len(data) - 1


def check_file_format(path: Path, n_features: int) -> None:
    """The file is what its name says, read the strict way the loader reads it."""
    if path.suffix == ".json":
        json.loads(path.read_text(encoding="utf-8"))
    elif path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)  # raises on object arrays (pickled cells)
        assert not array.dtype.hasobject
    elif path.suffix == ".ubj":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(path))
        assert booster.num_features() == n_features
    else:
        raise AssertionError(f"unexpected file in the bundle: {path.name}")


def test_the_pickle_detector_finds_every_protocol(tmp_path):
    obj = {"coef": np.arange(3.0), "model": [1, 2, 3]}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert looks_like_pickle(pickle.dumps(obj, protocol=protocol)), protocol
        assert looks_like_pickle(b"\x93NUMPY header " + pickle.dumps(obj, protocol=protocol)) == (protocol >= 4), (
            protocol
        )
    np.save(tmp_path / "objects.npy", np.array([obj], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        check_file_format(tmp_path / "objects.npy", 3)
    assert not looks_like_pickle(b'{"coef": [1.0, 2.0]}\n')


@pytest.fixture(scope="module")
def table():
    return feature_table()


@pytest.fixture(scope="module")
def bundles(table, tmp_path_factory) -> dict[str, tuple[Bundle, Path]]:
    """Each conf/model/ option trained once and saved."""
    out = {}
    for name in OPTIONS:
        bundle = train_bundle(table, small_config(name))
        directory = tmp_path_factory.mktemp(name)
        save_bundle(bundle, directory)
        out[name] = bundle, directory
    return out


@pytest.mark.parametrize("name", OPTIONS)
def test_bundle_round_trip_without_pickle(name, table, bundles):
    bundle, directory = bundles[name]
    model_file = spec(small_config(name).estimator).file
    assert sorted(p.name for p in directory.iterdir()) == sorted(["bundle.json", model_file, CHECKSUM_FILE])
    for path in directory.iterdir():
        if path.name == CHECKSUM_FILE:
            continue
        assert not looks_like_pickle(path.read_bytes()), path.name
        check_file_format(path, len(FEATURES))

    loaded = load_bundle(directory)
    assert loaded.version.startswith(f"{name}-") and len(loaded.version) == len(name) + 13
    X = table[list(bundle.features)].to_numpy()
    np.testing.assert_array_equal(loaded.predict_proba(X), bundle.predict_proba(X))
    np.testing.assert_array_equal(
        loaded.predict_proba(X.astype(np.float32)[:1]), bundle.predict_proba(X.astype(np.float32)[:1])
    )
    assert loaded.threshold == bundle.threshold and 0 < bundle.threshold < 1

    meta = json.loads((directory / "bundle.json").read_text())
    assert tuple(meta) == METADATA_KEYS
    assert meta["features"] == FEATURES
    assert meta["name"] == name and meta["params"] == small_config(name).to_dict()
    assert meta["model"]["file"] == model_file
    assert meta["standardizer"] is not None and len(meta["standardizer"]["mean"]) == 3


@pytest.mark.parametrize("name", ["xgboost", "random_forest"])
def test_training_is_byte_identical(name, table, tmp_path):
    for run in ("a", "b"):
        save_bundle(train_bundle(table, small_config(name)), tmp_path / run)
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    other = small_config(name, random_state=1, **({"subsample": 0.8} if name == "xgboost" else {}))
    save_bundle(train_bundle(table, other), tmp_path / "c")
    assert (tmp_path / "c" / "bundle.json").read_bytes() != (tmp_path / "a" / "bundle.json").read_bytes()


def test_bundle_refuses_other_features(bundles, table):
    bundle, _ = bundles["logistic_regression"]
    bundle.check_features(FEATURES)
    with pytest.raises(BundleError, match=r"missing \['noise'\], unexpected \['amount_ratio'\]"):
        bundle.check_features(["tx_amount", "terminal_risk", "amount_ratio"])
    with pytest.raises(BundleError, match="different order"):
        bundle.check_features(["noise", "tx_amount", "terminal_risk"])
    with pytest.raises(BundleError, match="missing"):
        bundle.score(table.drop(columns=["noise"]))
    with pytest.raises(BundleError, match=r"got shape \(3,\)"):
        bundle.predict_proba(np.zeros(3))


def _edit_meta(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        meta = json.loads((directory / "bundle.json").read_text())
        change(meta)
        (directory / "bundle.json").write_text(json.dumps(meta))

    return apply


def _write(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda directory: (directory / name).write_bytes(content)


def _npy(array: np.ndarray, allow_pickle: bool = False) -> Callable[[Path], None]:
    return lambda directory: np.save(directory / "trees.npy", array, allow_pickle=allow_pickle)


DAMAGE = {
    # name: (option, damage, message)
    "not json": ("decision_tree", _write("bundle.json", b"{not json"), "not JSON"),
    "other format version": ("decision_tree", _edit_meta(lambda m: m.update(format_version=2)), "bundle format 2"),
    "missing keys": (
        "decision_tree",
        _edit_meta(lambda m: [m.pop("threshold"), m.pop("standardizer")]),
        r"missing key\(s\) \['threshold', 'standardizer'\]",
    ),
    "unknown estimator": ("decision_tree", _edit_meta(lambda m: m.update(estimator="svm")), "unknown estimator 'svm'"),
    "unknown model format": (
        "decision_tree",
        _edit_meta(lambda m: m["model"].update(format="onnx")),
        "unknown model format",
    ),
    "format of another estimator": (
        "decision_tree",
        _edit_meta(lambda m: m.update(estimator="logistic_regression")),
        "unknown model format",
    ),
    "features not names": ("decision_tree", _edit_meta(lambda m: m.update(features="tx_amount")), "features must be"),
    "threshold not a number": (
        "decision_tree",
        _edit_meta(lambda m: m.update(threshold="0.5")),
        "threshold must be a finite number",
    ),
    "standardiser of other width": (
        "decision_tree",
        _edit_meta(lambda m: m["standardizer"].update(mean=[0.0])),
        "standardizer needs 3",
    ),
    "model file missing": ("decision_tree", lambda d: (d / "trees.npy").unlink(), "trees.npy is missing"),
    "an extra file": ("decision_tree", _write("model.pkl", pickle.dumps([1])), r"unexpected file\(s\) \['model.pkl'\]"),
    "wrong dtype": ("decision_tree", _npy(np.zeros(3)), "dtype"),
    "pickled object array": (
        "decision_tree",
        _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True),
        "not a plain .npy",
    ),
    "truncated npy": ("decision_tree", _write("trees.npy", b"\x93NUMPY\x01\x00"), "not a plain .npy"),
    "tree roots missing": ("decision_tree", _edit_meta(lambda m: m["model"].pop("tree_roots")), "tree_roots must be"),
    "corrupt ubjson": ("xgboost", _write("model.ubj", b"{garbage"), "not an XGBoost UBJSON model"),
    "pickle instead of ubjson": (
        "xgboost",
        _write("model.ubj", pickle.dumps({"booster": 1})),
        "not an XGBoost UBJSON model",
    ),
    "coefficients of other width": (
        "logistic_regression",
        _write("linear.json", b'{"coef": [1.0], "intercept": 0.0}'),
        "expected 3 finite coefficients",
    ),
    "linear model not json": ("logistic_regression", _write("linear.json", b"\x80\x04K\x01."), r"expected \{\"coef\""),
}

#: The damage `read_bundle_metadata` sees too (the rest is in the model file, which only loading reads).
METADATA_DAMAGE = list(DAMAGE)[: list(DAMAGE).index("an extra file") + 1]


def test_loading_refuses_no_bundle(tmp_path):
    with pytest.raises(BundleError, match="no model bundle"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="no model bundle"):
        read_bundle_metadata(tmp_path)


@pytest.mark.parametrize("name", OPTIONS)
def test_the_metadata_alone_says_what_the_loaded_bundle_says(name, bundles):
    """What a stage reading scores needs (features, threshold, version), without loading the model."""
    directory = bundles[name][1]
    loaded, info = load_bundle(directory), read_bundle_metadata(directory)
    assert (info.features, info.threshold, info.version, info.name) == (
        loaded.features,
        loaded.threshold,
        loaded.version,
        loaded.name,
    )
    assert info.metadata == loaded.metadata and info.version.startswith(f"{name}-")
    with pytest.raises(BundleError, match="feature list differs"):
        info.check_features(list(reversed(info.features)))


@pytest.mark.parametrize("case", DAMAGE)
def test_loading_refuses_any_change_by_its_checksum(case, bundles, tmp_path):
    option, damage, _ = DAMAGE[case]
    directory = tmp_path / "bundle"
    shutil.copytree(bundles[option][1], directory)
    damage(directory)
    with pytest.raises(
        BundleError, match=r"does not match its sha256 in SHA256SUMS|is missing from the bundle|unexpected file"
    ):
        load_bundle(directory)


@pytest.mark.parametrize("case", DAMAGE)
def test_loading_refuses_anything_unexpected_even_with_fresh_checksums(case, bundles, tmp_path):
    """A bundle edited by hand and resealed: the loader still checks what it is about to trust."""
    option, damage, message = DAMAGE[case]
    directory = tmp_path / "bundle"
    shutil.copytree(bundles[option][1], directory)
    load_bundle(directory)  # intact: loads
    damage(directory)
    if (directory / CHECKSUM_FILE).exists() and case != "an extra file":
        write_checksums(directory)
    with pytest.raises(BundleError, match=message):
        load_bundle(directory)
    if case in METADATA_DAMAGE:  # bundle.json and the file list: refused without loading the model too
        with pytest.raises(BundleError, match=message):
            read_bundle_metadata(directory)


def test_a_truncated_model_or_missing_checksums_is_refused_in_one_line(bundles, tmp_path):
    directory = tmp_path / "bundle"
    shutil.copytree(bundles["xgboost"][1], directory)
    model = directory / "model.ubj"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(
        BundleError,
        match=re.escape("model.ubj does not match its sha256 in SHA256SUMS: the bundle was changed or truncated"),
    ):
        load_bundle(directory)
    (directory / CHECKSUM_FILE).unlink()
    with pytest.raises(BundleError, match="SHA256SUMS is missing"):
        load_bundle(directory)


def test_the_version_is_the_same_for_the_same_files_and_changes_with_them(bundles, tmp_path):
    _, directory = bundles["xgboost"]
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    assert load_bundle(copy).version == load_bundle(directory).version
    meta = json.loads((copy / "bundle.json").read_text())
    meta["threshold"] = 0.123
    (copy / "bundle.json").write_text(json.dumps(meta))
    write_checksums(copy)
    assert load_bundle(copy).version != load_bundle(directory).version


def test_predict_row_equals_predict_proba_of_one_row(bundles, table):
    for name in ("xgboost", "logistic_regression"):
        bundle = load_bundle(bundles[name][1], nthread=1)
        X = table[list(bundle.features)].to_numpy(np.float64)[:20]
        rows = [bundle.predict_row(x) for x in X]
        # a matrix product over one row may round differently from one over twenty (BLAS): 1e-16
        np.testing.assert_allclose(rows, bundle.predict_proba(X), rtol=0, atol=1e-12)


def test_a_features_config_is_recorded_only_when_it_gives_the_bundles_features(bundles, tmp_path):
    bundle, directory = bundles["logistic_regression"]
    assert bundle.features_config is None  # not recorded: a bundle of before
    config = FeatureConfig.parse(
        {
            "set": "x",
            "customer_windows": [1],
            "terminal_windows": [],
            "delay_days": 0,
            "extras": [],
            "extra_windows": [],
        },
        "features",
    )
    with pytest.raises(BundleError, match=r"are not those of the features config \['tx_amount', 'tx_during_weekend'"):
        with_features_config(bundle, config)
    damaged = tmp_path / "damaged"
    shutil.copytree(directory, damaged)
    meta = json.loads((damaged / "bundle.json").read_text())
    (damaged / "bundle.json").write_text(json.dumps(meta | {"features_config": {"set": "x"}}))
    write_checksums(damaged)
    with pytest.raises(BundleError, match=r"features_config does not parse: features_config.customer_windows"):
        load_bundle(damaged)
    (damaged / "bundle.json").write_text(json.dumps(meta | {"features_config": config.to_dict()}))
    write_checksums(damaged)
    with pytest.raises(BundleError, match=r"features_config gives the features \['tx_amount', 'tx_during_weekend'"):
        load_bundle(damaged)
