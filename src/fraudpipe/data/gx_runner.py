"""Running a Great Expectations suite: one ephemeral context, and the Data Docs it writes, made reproducible.

Each suite runs through a Checkpoint; when a docs directory is given, `Runner.build_docs` renders
every run's result and suite into our Data Docs site once, after the last run. GX stamps wall-clock
times and random ids into those pages, and bundles assets no page links to; ``pin_volatile_html``
and ``prune_static`` make the same data give the same bytes.

``great_expectations`` is imported inside functions only, by `startup.import_great_expectations`
(see ``data.expectations``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pandas as pd

from fraudpipe.startup import import_great_expectations

#: The name of our Data Docs site in the GX context.
DOCS_SITE = "fraudpipe"
#: Pinned so that the same data gives byte-identical Data Docs; git and DVC keep the run history.
RUN_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Runner:
    """One ephemeral GX context; each suite runs through a Checkpoint, then `build_docs` renders them."""

    def __init__(self, docs_dir: Path | None) -> None:
        gx = import_great_expectations()
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        self._suite_id = ExpectationSuiteIdentifier
        self._gx = gx
        self._built: list[Any] = []  # what `build_docs` renders: each run's result and suite
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.docs = docs_dir is not None
        if docs_dir is not None:
            self.context.add_data_docs_site(
                DOCS_SITE,
                {
                    "class_name": "SiteBuilder",
                    "show_how_to_buttons": False,
                    "store_backend": {  # GX needs an absolute path in an ephemeral context
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(docs_dir.resolve()),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        asset = self.context.data_sources.add_pandas("fraudpipe").add_dataframe_asset("transactions")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole batch")

    def run(self, name: str, expectations: list[Any], frame: pd.DataFrame) -> Any:
        gx = self._gx
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=self.batch_definition, suite=suite)
        )
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(name=name, validation_definitions=[definition], result_format="COMPLETE")
        )
        result = checkpoint.run(
            batch_parameters={"dataframe": frame}, run_id=gx.RunIdentifier(run_name="ingest", run_time=RUN_TIME)
        )
        ((identifier, validation),) = result.run_results.items()
        self._built += [identifier, self._suite_id(name=name)]
        return validation

    def build_docs(self) -> None:
        """Render the runs so far into our Data Docs site, once: the pages of each result and suite,
        then the index (GX's UpdateDataDocsAction would render the site again after every run)."""
        if self.docs and self._built:
            self.context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=self._built)


_TIMESTAMP = re.compile(r"\d{8}T\d{6}\.\d{6}Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def pin_volatile_html(site: Path) -> None:
    """GX stamps wall-clock load times and random element ids into its HTML: pin them per file."""
    pinned = RUN_TIME.strftime("%Y%m%dT%H%M%S.%fZ")
    for page in sorted(site.rglob("*.html")):
        text = _TIMESTAMP.sub(pinned, page.read_text(encoding="utf-8"))
        page.write_text(_number_uuids(text), encoding="utf-8")


def _number_uuids(text: str) -> str:
    """Each distinct UUID of a page replaced by one numbered in order of first appearance."""
    ids: dict[str, str] = {}
    return _UUID.sub(lambda m: ids.setdefault(m.group(0), f"00000000-0000-0000-0000-{len(ids):012d}"), text)


def prune_static(site: Path) -> None:
    """Drop GX's bundled assets that no page links to (~4 MB of tutorial GIFs and fonts)."""
    pages = "\n".join(p.read_text(encoding="utf-8") for p in site.rglob("*.html"))
    static = site / "static"
    for asset in sorted(static.rglob("*"), reverse=True):
        if asset.is_file() and asset.relative_to(site).as_posix() not in pages:
            asset.unlink()
        elif asset.is_dir() and not any(asset.iterdir()):
            asset.rmdir()
