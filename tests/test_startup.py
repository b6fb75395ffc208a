"""A stage's process imports xgboost without scikit-learn, trains and scores with it as ever, and can
still import scikit-learn afterwards; a process that did not declare it keeps xgboost's wrappers.
Great Expectations starts without scipy.stats and sqlalchemy, validates, and leaves both usable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

LEAN = """
import json, sys
import numpy as np
from fraudpipe.startup import import_xgboost, without_sklearn_wrappers
without_sklearn_wrappers()
xgb = import_xgboost()
loaded = sorted(m for m in ("sklearn", "scipy.stats") if m in sys.modules)
rng = np.random.default_rng(0)
X, y = rng.normal(size=(300, 4)), (rng.random(300) < 0.3).astype(int)
booster = xgb.train({"objective": "binary:logistic", "seed": 0}, xgb.DMatrix(X, label=y), num_boost_round=5)
scores = booster.inplace_predict(X).tolist()
import sklearn.metrics
print(json.dumps({"loaded": loaded, "scores": scores, "sklearn_after": "sklearn" in sys.modules}))
"""

PLAIN = """
import json, sys
import numpy as np
from fraudpipe.startup import import_xgboost
xgb = import_xgboost()
rng = np.random.default_rng(0)
X, y = rng.normal(size=(300, 4)), (rng.random(300) < 0.3).astype(int)
booster = xgb.train({"objective": "binary:logistic", "seed": 0}, xgb.DMatrix(X, label=y), num_boost_round=5)
xgb.XGBClassifier(n_estimators=2).fit(X, y)  # the wrappers work: nothing was declared
print(json.dumps({"loaded": "sklearn" in sys.modules, "scores": booster.inplace_predict(X).tolist()}))
"""


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_a_declared_process_imports_xgboost_without_scikit_learn_and_scores_the_same():
    lean, plain = run(LEAN), run(PLAIN)
    assert lean["loaded"] == []
    assert lean["sklearn_after"]  # importable again once xgboost is loaded
    assert plain["loaded"]
    assert lean["scores"] == plain["scores"]


GX = """
import json, sys
import pandas as pd
from fraudpipe.startup import import_great_expectations
gx = import_great_expectations()
at_start = {m: m in sys.modules for m in ("sqlalchemy", "scipy.stats._stats_py")}
context = gx.get_context(mode="ephemeral")
batch = context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
check = gx.expectations.ExpectColumnValuesToBeBetween(column="x", max_value=2)
suite = gx.ExpectationSuite(name="s", expectations=[check])
result = batch.get_batch(batch_parameters={"dataframe": pd.DataFrame({"x": [1, 2, 3]})}).validate(suite)
from scipy import stats  # bound lazily while GX loaded: it runs now, as if imported here
import sqlalchemy
print(json.dumps({
    "at_start": at_start,
    "success": result.success,
    "unexpected": result.results[0].result["unexpected_count"],
    "ks": stats.ks_2samp([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]).pvalue,
    "sqlalchemy_after": "sqlalchemy" in sys.modules,
}))
"""


def test_great_expectations_starts_without_scipy_stats_and_sqlalchemy_and_validates():
    out = run(GX)
    assert out["at_start"] == {"sqlalchemy": False, "scipy.stats._stats_py": False}
    assert (out["success"], out["unexpected"]) == (False, 1)
    assert out["ks"] == pytest.approx(0.1)  # scipy.stats works once used (exact p of disjoint samples of 3)
    assert out["sqlalchemy_after"]
