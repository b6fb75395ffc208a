"""Stage `check_config`: every group of params.yaml parsed by its model, all mistakes in one line,
before ingest starts. Its output holds no parameter value, so a passing check never reruns ingest."""

from pathlib import Path

import yaml

from fraudpipe.io import write_json
from fraudpipe.pipeline.preflight import GROUPS, config_problems, require_no_problems
from fraudpipe.pipeline.stage import PARAMS_FILE, load_params, run

PASSED = Path("reports/check/config.json")


def main() -> None:
    load_params(*GROUPS)  # a missing or unreadable params.yaml is its own one-line error
    params = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    require_no_problems(config_problems(params), str(PARAMS_FILE))
    write_json({"groups_checked": len(GROUPS), "problems": 0}, PASSED)
    print(f"check_config: {len(GROUPS)} groups of {PARAMS_FILE} parsed ({', '.join(GROUPS)})")


if __name__ == "__main__":
    run(main, "check_config")
