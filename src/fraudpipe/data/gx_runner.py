"""Running a Great Expectations suite: one ephemeral context, and the Data Docs it writes, made reproducible.

Each suite runs through a Checkpoint that, when a docs directory is given, updates our Data Docs
site. GX stamps wall-clock times and random ids into those pages, and bundles assets no page
links to; ``pin_volatile_html`` and ``prune_static`` make the same data give the same bytes.

``great_expectations`` is imported inside functions only (see ``data.expectations``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pandas as pd

#: The name of our Data Docs site in the GX context.
DOCS_SITE = "fraudpipe"
#: Pinned so that the same data gives byte-identical Data Docs; git and DVC keep the run history.
RUN_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Runner:
    """One ephemeral GX context; each suite runs through a Checkpoint that updates our Data Docs site."""

    def __init__(self, docs_dir: Path | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.docs = docs_dir is not None
        if docs_dir is not None:
            self.context.add_data_docs_site(
                DOCS_SITE,
                {  # type: ignore[typeddict-unknown-key]  # GX's TypedDict omits SiteBuilder's show_how_to_buttons
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
        actions = [gx.checkpoint.UpdateDataDocsAction(name="data docs", site_names=[DOCS_SITE])] if self.docs else []
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(name=name, validation_definitions=[definition], actions=actions, result_format="COMPLETE")
        )
        result = checkpoint.run(
            batch_parameters={"dataframe": frame}, run_id=gx.RunIdentifier(run_name="ingest", run_time=RUN_TIME)
        )
        (validation,) = result.run_results.values()
        return validation


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
