"""One feature row to a fraud probability, as fast as XGBoost allows.

The row is standardised into a preallocated float32 buffer (XGBoost reads float32: the same
rounding it would apply to a float64 row), which goes to XGBoost's C entry point for in-place
prediction on dense data (``XGBoosterPredictFromDense``, the call ``Booster.inplace_predict``
makes) with its arguments built once. ``inplace_predict``'s Python wrapper re-checks the input
type and rebuilds its JSON arguments on every call, which costs about twice the prediction
itself for one row.

Written by hand because that per-call overhead is most of a request's budget; it falls back to
``Bundle.predict_row`` for other estimators, or if this XGBoost lacks the entry point, and is
checked against it on load (``RowScorer`` refuses to use a fast path that disagrees).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from fraudpipe.model import Bundle


class RowScorer:
    """``scorer(row)`` is ``bundle.predict_row(row)`` (row: float64 features in bundle order)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.buffer = np.zeros((1, len(bundle.features)), dtype=np.float32)
        self.mean, self.scale = bundle.mean, bundle.scale
        self.fast = False
        self._call = _xgboost_call(bundle.predictor.model, self.buffer)
        if self._call is not None:
            self.fast = self._agrees()

    def __call__(self, row: np.ndarray) -> float:
        if not self.fast:
            return self.bundle.predict_row(row)
        if self.mean is None:
            self.buffer[0] = row
        else:
            self.buffer[0] = (row - self.mean) / self.scale
        return self._call()

    def _agrees(self) -> bool:
        rng = np.random.default_rng(0)
        centre = np.zeros(len(self.bundle.features)) if self.mean is None else self.mean
        spread = np.ones(len(self.bundle.features)) if self.scale is None else self.scale
        self.fast = True
        probes = [
            centre + spread * rng.normal(size=len(centre)) * k for k in (0.0, 0.5, 1.0, 2.0, 4.0) for _ in range(4)
        ]
        try:
            return all(self(p) == self.bundle.predict_row(p) for p in probes)
        except Exception:
            return False


def _xgboost_call(model: Any, buffer: np.ndarray) -> Any:
    """A no-argument function predicting ``buffer``'s row with ``model``, or None if not an XGBoost booster."""
    try:
        import xgboost
        from xgboost._data_utils import array_interface
        from xgboost.core import _LIB, _check_call, c_bst_ulong, make_jcargs
    except ImportError:
        return None
    if not isinstance(model, xgboost.Booster) or not hasattr(_LIB, "XGBoosterPredictFromDense"):
        return None
    data = array_interface(buffer)  # the buffer's address: fixed for the scorer's life
    args = make_jcargs(
        type=0, training=False, iteration_begin=0, iteration_end=0, missing=np.nan, strict_shape=False, cache_id=0
    )
    handle, shape, dims, preds = (
        model.handle,
        ctypes.POINTER(c_bst_ulong)(),
        c_bst_ulong(),
        ctypes.POINTER(ctypes.c_float)(),
    )
    predict, refs = _LIB.XGBoosterPredictFromDense, (ctypes.byref(shape), ctypes.byref(dims), ctypes.byref(preds))

    def call() -> float:
        _check_call(predict(handle, data, args, None, *refs))
        return float(preds[0])

    call.keep = (model, buffer)  # type: ignore[attr-defined]  # the handle and the buffer outlive the function
    return call
