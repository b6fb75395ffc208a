"""One feature row to a fraud probability, as fast as XGBoost allows, and a word on which path it took.

The row is standardised into a preallocated float32 buffer (XGBoost reads float32: the same
rounding it would apply to a float64 row), which goes to XGBoost's C entry point for in-place
prediction on dense data (``XGBoosterPredictFromDense``, the call ``Booster.inplace_predict``
makes) with its arguments built once. ``inplace_predict``'s Python wrapper re-checks the input
type and rebuilds its JSON arguments on every call, which costs about twice the prediction
itself for one row.

Written by hand because that per-call overhead is most of a request's budget. It reaches into
XGBoost's private modules, so it is checked on the minor versions pyproject.toml allows; it falls
back to ``Bundle.predict_row`` for other estimators, when this XGBoost lacks what it uses, or when
its scores disagree with that path on probe rows. ``RowScorer.fast_path`` says which path it took
and why, so the service can say so instead of silently running slower.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraudpipe.model import Bundle
from fraudpipe.startup import import_xgboost

#: The C entry point the fast path calls.
ENTRY_POINT = "XGBoosterPredictFromDense"


@dataclass(frozen=True)
class FastPath:
    """Whether one-row scoring calls XGBoost's C entry point (else ``Bundle.predict_row``), and why."""

    on: bool
    reason: str

    def describe(self) -> str:
        """For the start-up line."""
        return f"fast path on ({self.reason})" if self.on else f"fast path OFF, Bundle.predict_row ({self.reason})"


class RowScorer:
    """``scorer(row)`` is ``bundle.predict_row(row)`` (row: float64 features in bundle order)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.buffer = np.zeros((1, len(bundle.features)), dtype=np.float32)
        self.mean, self.scale = bundle.mean, bundle.scale
        self.fast = False
        self._call, reason = _xgboost_call(bundle.predictor.model, self.buffer, bundle.name)
        if self._call is not None:
            reason = self._agrees(reason)
        self.fast_path = FastPath(self.fast, reason)

    def __call__(self, row: np.ndarray) -> float:
        if not self.fast:
            return self.bundle.predict_row(row)
        if self.mean is None:
            self.buffer[0] = row
        else:
            self.buffer[0] = (row - self.mean) / self.scale
        return self._call()

    def _agrees(self, reason: str) -> str:
        """Turn the fast path on when it gives exactly ``predict_row``'s scores on probe rows; the reason either way."""
        rng = np.random.default_rng(0)
        centre = np.zeros(len(self.bundle.features)) if self.mean is None else self.mean
        spread = np.ones(len(self.bundle.features)) if self.scale is None else self.scale
        probes = [
            centre + spread * rng.normal(size=len(centre)) * k for k in (0.0, 0.5, 1.0, 2.0, 4.0) for _ in range(4)
        ]
        self.fast = True
        try:
            agree = all(self(p) == self.bundle.predict_row(p) for p in probes)
        except Exception as exc:  # a changed private API fails here rather than on a request
            self.fast = False
            return f"{reason}: failed on a probe row ({type(exc).__name__}: {exc})"
        self.fast = agree
        return reason if agree else f"{reason}: its scores differ from Bundle.predict_row's on probe rows"


def _xgboost_call(model: Any, buffer: np.ndarray, name: str) -> tuple[Any, str]:
    """A no-argument function predicting ``buffer``'s row with ``model`` (None when there is none),
    and the reason: what it calls, or why there is no such function."""
    try:
        xgboost = import_xgboost()
    except ImportError:
        return None, f"the {name} estimator is not an XGBoost booster"
    if not isinstance(model, xgboost.Booster):
        return None, f"the {name} estimator is not an XGBoost booster"
    version = f"xgboost {xgboost.__version__}"
    try:
        from xgboost._data_utils import array_interface
        from xgboost.core import _LIB, _check_call, c_bst_ulong, make_jcargs
    except ImportError as exc:
        return None, f"{version} lacks the private API the fast path uses ({exc})"
    if not hasattr(_LIB, ENTRY_POINT):
        return None, f"{version} has no {ENTRY_POINT}"
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
    predict, refs = getattr(_LIB, ENTRY_POINT), (ctypes.byref(shape), ctypes.byref(dims), ctypes.byref(preds))

    def call() -> float:
        _check_call(predict(handle, data, args, None, *refs))
        return float(preds[0])

    call.keep = (model, buffer)  # type: ignore[attr-defined]  # the handle and the buffer outlive the function
    return call, f"{version}, float32 row into {ENTRY_POINT}"
