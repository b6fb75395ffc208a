"""What a pipeline stage's process imports, and what it can leave out.

A stage is a fresh interpreter: what it imports is part of its time, on every run. Heavy libraries
are imported where they are used (xgboost where a model is fitted or loaded), and a stage that
does not use a library's optional part declares so, here, before its work starts.
"""

from __future__ import annotations

import importlib
import importlib.util
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


def import_great_expectations() -> ModuleType:
    """The great_expectations module, for the validation at ingestion.

    GX's start imports every expectation it ships and, with them, scipy.stats (for the KL-divergence
    and distribution KS expectations, about 1 s on two cores) and, when it is installed, sqlalchemy
    (for SQL data sources, about 0.4 s). Our suites validate pandas DataFrames with neither. So
    scipy.stats is bound lazily while GX loads (the standard library's ``LazyLoader``: the module
    runs on its first attribute use, by GX or by anyone, as if imported then), and sqlalchemy reads
    as not installed while GX loads, unless this process imported it already (an SQL source read
    first): GX's SQL data sources are then off in this process, which it never uses."""
    if "great_expectations" in sys.modules:
        return sys.modules["great_expectations"]
    _bind_lazily("scipy.stats")
    refused = "sqlalchemy" not in sys.modules
    if refused:
        sys.modules["sqlalchemy"] = None  # type: ignore[assignment]
    try:
        import great_expectations
    finally:
        if refused:
            del sys.modules["sqlalchemy"]
    return great_expectations


def _bind_lazily(name: str) -> None:
    """Put a not-yet-run module ``name`` in ``sys.modules`` and on its parent package (so that
    ``from parent import child`` takes it without running it); nothing to do once it is imported."""
    if name in sys.modules:
        return
    parent_name, _, child = name.rpartition(".")
    parent = importlib.import_module(parent_name)
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    setattr(parent, child, module)
