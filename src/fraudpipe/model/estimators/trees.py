"""Decision trees and forests as flat node arrays: what `random_forest` and `decision_tree` share.

Every node of every tree (children, feature, threshold, P(fraud) of the leaf) goes into one
structured `.npy` array (`trees.npy`, no object fields, read with `allow_pickle=False`) and the
roots into bundle.json. Prediction walks the trees in numpy exactly as scikit-learn does (float32
inputs compared with float64 thresholds), so the saved model scores what the fitted one scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fraudpipe.errors import BundleError
from fraudpipe.model.estimators.base import Estimator

TREE_DTYPE = np.dtype([("left", "<i4"), ("right", "<i4"), ("feature", "<i4"), ("threshold", "<f8"), ("p_fraud", "<f8")])
CHUNK_ROWS = 4096


class Trees:
    """A decision tree or a forest; P(fraud) = mean of the trees' leaf values."""

    def __init__(self, nodes: np.ndarray, roots: Sequence[int]) -> None:
        self.nodes = nodes
        self.roots = np.asarray(roots, dtype=np.int64)
        self._left = nodes["left"].astype(np.int64)
        self._right = nodes["right"].astype(np.int64)
        self._feature = np.maximum(nodes["feature"], 0).astype(np.int64)  # leaves: any valid column
        self._threshold = nodes["threshold"]
        self._p = nodes["p_fraud"]

    @classmethod
    def from_sklearn(cls, estimators: Sequence[Any]) -> Trees:
        parts, roots, offset = [], [], 0
        for est in estimators:
            t = est.tree_
            nodes = np.zeros(t.node_count, dtype=TREE_DTYPE)
            leaf = t.children_left < 0
            nodes["left"] = np.where(leaf, -1, t.children_left + offset)
            nodes["right"] = np.where(leaf, -1, t.children_right + offset)
            nodes["feature"] = np.where(leaf, -1, t.feature)
            nodes["threshold"] = t.threshold
            value = t.value[:, 0, :]
            nodes["p_fraud"] = value[:, 1] / value.sum(axis=1)
            parts.append(nodes)
            roots.append(offset)
            offset += t.node_count
        return cls(np.concatenate(parts), roots)

    def predict(self, X: np.ndarray) -> np.ndarray:
        # scikit-learn compares float32 inputs with float64 thresholds; do the same for equal scores.
        X32 = np.asarray(X, dtype=np.float32)
        out = np.empty(len(X32), dtype=np.float64)
        for start in range(0, len(X32), CHUNK_ROWS):
            chunk = X32[start : start + CHUNK_ROWS]
            node = np.broadcast_to(self.roots, (len(chunk), len(self.roots))).copy()
            internal = self._left[node] >= 0
            while internal.any():
                value = np.take_along_axis(chunk, self._feature[node], axis=1)
                step = np.where(value <= self._threshold[node], self._left[node], self._right[node])
                node = np.where(internal, step, node)
                internal = self._left[node] >= 0
            out[start : start + len(chunk)] = self._p[node].sum(axis=1) / len(self.roots)
        return out


def check_trees(nodes: np.ndarray, roots: Any, n_features: int, where: str) -> None:
    """Refuse node arrays the walk could not score correctly or could loop on."""
    if (
        not isinstance(roots, list)
        or not roots
        or not all(isinstance(r, int) and not isinstance(r, bool) for r in roots)
    ):
        raise BundleError(f"{where}: tree_roots must be a non-empty list of node indices, got {roots!r}")
    n = len(nodes)
    index = np.arange(n)
    leaf = nodes["left"] < 0
    internal = ~leaf
    problems = []
    if any(r < 0 or r >= n for r in roots):
        problems.append(f"a root is outside the {n} nodes")
    # Children always come after their parent (scikit-learn's depth-first order): the walk ends.
    if (
        internal & ((nodes["left"] <= index) | (nodes["right"] <= index) | (nodes["right"] >= n) | (nodes["left"] >= n))
    ).any():
        problems.append("an internal node's children are not later nodes of the array")
    if (leaf & (nodes["right"] >= 0)).any():
        problems.append("a leaf has a right child")
    if (internal & ((nodes["feature"] < 0) | (nodes["feature"] >= n_features))).any():
        problems.append(f"an internal node splits on a feature outside 0..{n_features - 1}")
    p = nodes["p_fraud"][leaf]
    if not (np.isfinite(p) & (p >= 0) & (p <= 1)).all() or np.isnan(nodes["threshold"][internal]).any():
        problems.append("a leaf probability is outside [0, 1] or a threshold is NaN")
    if problems:
        raise BundleError(f"{where}: " + "; ".join(problems))


class TreeEstimator(Estimator):
    """Storage and scoring shared by the scikit-learn tree models; subclasses fit and configure."""

    format = "trees-npy"
    file = "trees.npy"

    def predict(self, model: Trees, X: np.ndarray) -> np.ndarray:
        return model.predict(X)

    def describe(self, model: Trees) -> dict[str, Any]:
        return {"format": self.format, "file": self.file, "tree_roots": model.roots.tolist()}

    def save(self, model: Trees, directory: Path) -> None:
        np.save(directory / self.file, model.nodes, allow_pickle=False)

    def load(self, directory: Path, entry: Mapping[str, Any], n_features: int, nthread: int | None) -> Trees:
        path = directory / self.file
        try:
            nodes = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:  # an object array, a bad header, a short file
            raise BundleError(f"{path}: not a plain .npy node array ({exc})") from None
        if nodes.dtype != TREE_DTYPE or nodes.ndim != 1 or not len(nodes):
            raise BundleError(
                f"{path}: expected a non-empty 1-D array of dtype {TREE_DTYPE}, "
                f"got dtype {nodes.dtype} shape {nodes.shape}"
            )
        check_trees(nodes, entry.get("tree_roots"), n_features, str(path))
        return Trees(nodes, entry["tree_roots"])
