"""Stage `check_config`: params.yaml what conf/ composes to, then every group parsed by its model, all
mistakes in one line, before ingest starts. Its output holds no parameter value, so a passing check
never reruns ingest.

In a plain `dvc repro` an edit of conf/ not yet recomposed (or a failed experiment's params.yaml)
stops here rather than being silently ignored; inside `dvc exp run` params.yaml is conf/ with the
-S overrides, as DVC just composed it.
"""

from fraudpipe.config import compose
from fraudpipe.errors import ConfigError
from fraudpipe.io import write_json
from fraudpipe.paths import CHECK_CONFIG, CONF_DIR, PARAMS
from fraudpipe.pipeline.loader import read_params
from fraudpipe.pipeline.params import GROUPS
from fraudpipe.pipeline.preflight import (
    RESTORE,
    composition_problem,
    config_problems,
    in_experiment,
    require_no_problems,
)
from fraudpipe.pipeline.stage import run


def main() -> None:
    params = read_params()
    experiment = in_experiment()
    composed = not experiment and CONF_DIR.is_dir()  # no conf/: params.yaml is the only source
    if composed and (problem := composition_problem(params, compose(CONF_DIR), CONF_DIR)):
        raise ConfigError(problem)
    require_no_problems(config_problems(params), str(PARAMS), then=RESTORE if experiment else "")
    write_json({"groups_checked": len(GROUPS), "problems": 0}, CHECK_CONFIG)
    source = f" ({CONF_DIR}/ composed)" if composed else " (this experiment's)" if experiment else ""
    print(f"check_config: {len(GROUPS)} groups of {PARAMS}{source} parsed ({', '.join(GROUPS)})")


if __name__ == "__main__":
    run(main, "check_config")
