"""Stage `check_data`: the data-dependent settings against the preprocessed transactions, all
problems in one line, before split, train, evaluate and backtest can fail on them one by one."""

from fraudpipe.contract import CUSTOMER_ID, TX_DATETIME, TX_FRAUD
from fraudpipe.data.split import SplitConfig
from fraudpipe.data.validate import ValidationConfig
from fraudpipe.io import read_parquet, write_json
from fraudpipe.metrics import EvaluateConfig
from fraudpipe.model.config import ModelConfig
from fraudpipe.paths import CHECK_DATA, INTERIM
from fraudpipe.pipeline.loader import load
from fraudpipe.pipeline.preflight import require_no_problems
from fraudpipe.pipeline.rules import settings_problems
from fraudpipe.pipeline.stage import run


def main() -> None:
    configs = (
        load("split", SplitConfig),
        load("model.threshold_validation_days", ModelConfig),  # dvc.yaml declares these keys of model and
        load("evaluate.card_precision_k", EvaluateConfig),  # evaluate only: a model change does not rerun it
        load("validation", ValidationConfig),
    )
    transactions = read_parquet(INTERIM, columns=[TX_DATETIME, CUSTOMER_ID, TX_FRAUD])  # all the checks read
    require_no_problems(settings_problems(transactions, *configs), f"the settings for {INTERIM}")
    write_json({"problems": 0}, CHECK_DATA)
    print(f"check_data: periods, folds, threshold days, CP@k budget and fraud-rate band all work on {INTERIM}")


if __name__ == "__main__":
    run(main, "check_data")
