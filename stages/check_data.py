"""Stage `check_data`: the data-dependent settings against the preprocessed transactions, all
problems in one line, before split, train, evaluate and backtest can fail on them one by one."""

from pathlib import Path

from fraudpipe.contract import CUSTOMER_ID, TX_DATETIME, TX_FRAUD
from fraudpipe.io import read_parquet, write_json
from fraudpipe.pipeline.preflight import require_no_problems, settings_problems
from fraudpipe.pipeline.stage import load_params, run

INTERIM = Path("data/interim/transactions.parquet")
PASSED = Path("reports/check/data.json")


def main() -> None:
    params = load_params("split", "model", "evaluate", "validation")
    transactions = read_parquet(INTERIM, columns=[TX_DATETIME, CUSTOMER_ID, TX_FRAUD])  # all the checks read
    require_no_problems(settings_problems(transactions, params), f"the settings for {INTERIM}")
    write_json({"problems": 0}, PASSED)
    print(f"check_data: periods, folds, threshold days, CP@k budget and fraud-rate band all work on {INTERIM}")


if __name__ == "__main__":
    run(main, "check_data")
