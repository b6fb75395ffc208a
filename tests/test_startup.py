"""A stage's process imports xgboost without scikit-learn, trains and scores with it as ever, and can
still import scikit-learn afterwards; a process that did not declare it keeps xgboost's wrappers."""

from __future__ import annotations

import json
import subprocess
import sys

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
