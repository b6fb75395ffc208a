"""What a pipeline stage's process imports, and what it can leave out.

A stage is a fresh interpreter: what it imports is part of its time, on every run. Heavy libraries
are imported where they are used (xgboost where a model is fitted or loaded), and a stage that
does not use a library's optional part declares so, here, before its work starts.
"""

from __future__ import annotations

import sys
from types import ModuleType

#: Whether this process imports xgboost without scikit-learn (`without_sklearn_wrappers`).
_without_sklearn = False


def without_sklearn_wrappers() -> None:
    """Declare that this process never uses xgboost's scikit-learn wrappers (``XGBClassifier``
    and the like), so that `import_xgboost` may leave scikit-learn out. Every pipeline stage does
    (`pipeline.stage.run`); the service and the benchmarks do not."""
    global _without_sklearn
    _without_sklearn = True


def import_xgboost() -> ModuleType:
    """The xgboost module, for the code that fits, loads or calls a booster.

    Installed next to it, scikit-learn is imported by xgboost's own start (``xgboost.compat``, for
    the wrappers), and scikit-learn imports scipy.stats: 1.5 to 2.8 s of a scoring stage on two
    cores, against 0.3 s for xgboost alone. In a process that declared it does without the
    wrappers, scikit-learn reads as not installed while xgboost loads (a None entry in
    ``sys.modules``, Python's documented way to refuse an import), then is importable again:
    Booster, DMatrix, ``train`` and ``inplace_predict`` need none of it, and a scikit-learn imported
    later (a baseline estimator's fit) works as ever. Only the wrappers refuse to work in such a
    process, which is why it is a declaration."""
    if "xgboost" in sys.modules or not _without_sklearn or "sklearn" in sys.modules:
        import xgboost

        return xgboost
    sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        import xgboost
    finally:
        del sys.modules["sklearn"]
    return xgboost
