"""Stage `check_config`: every group of params.yaml parsed by its model, all mistakes in one line,
before ingest starts. Its output holds no parameter value, so a passing check never reruns ingest."""

from fraudpipe.io import write_json
from fraudpipe.paths import CHECK_CONFIG, PARAMS
from fraudpipe.pipeline.loader import read_params
from fraudpipe.pipeline.params import GROUPS
from fraudpipe.pipeline.preflight import config_problems, require_no_problems
from fraudpipe.pipeline.stage import run


def main() -> None:
    require_no_problems(config_problems(read_params()), str(PARAMS))
    write_json({"groups_checked": len(GROUPS), "problems": 0}, CHECK_CONFIG)
    print(f"check_config: {len(GROUPS)} groups of {PARAMS} parsed ({', '.join(GROUPS)})")


if __name__ == "__main__":
    run(main, "check_config")
