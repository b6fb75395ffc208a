"""Time ingestion of a default-size batch: conform, Great Expectations validation, and the whole.

Target: validating the default simulated data (~1.75 M rows) in at most 3 s. The batch
is generated here with numpy in the shape of the published simulator run (1,754,155 rows, 183
days, ~0.84 % fraud), so the benchmark does not depend on the simulator.

    python benchmarks/validate.py [--rows N] [--bad-share F] [--text] [--docs DIR] [--json F]

--bad-share makes that share of rows fail a row-level check (negative amount), to show the cost
of quarantine; --text gives every column as strings, like a CSV source; --docs also writes Data Docs.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fraudpipe.data.conform import to_contract
from fraudpipe.data.ingest import ingest_batch
from fraudpipe.data.validate import ValidationConfig, validate
from fraudpipe.startup import import_great_expectations

CONFIG = ValidationConfig(
    max_amount=100_000.0,
    min_datetime="2000-01-01T00:00:00",
    max_datetime="2030-12-31T23:59:59",
    min_rows=1000,
    min_fraud_rate=0.0005,
    max_fraud_rate=0.05,
    max_quarantine_share=0.01,
)


def make_batch(n: int, bad_share: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, 183 * 86_400, n))
    amount = np.round(rng.gamma(2.0, 27.0, n), 2)
    amount[rng.random(n) < bad_share] = -1.0
    return pd.DataFrame(
        {
            "transaction_id": np.arange(n, dtype=np.int64),
            "tx_datetime": (np.datetime64("2018-04-01T00:00:00", "s") + seconds).astype("datetime64[us]"),
            "customer_id": rng.integers(0, 5_000, n, dtype=np.int64),
            "terminal_id": rng.integers(0, 10_000, n, dtype=np.int64),
            "tx_amount": amount,
            "tx_fraud": (rng.random(n) < 0.00837).astype(np.int8),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_754_155)
    parser.add_argument("--bad-share", type=float, default=0.0)
    parser.add_argument("--text", action="store_true", help="all columns as strings (CSV-like)")
    parser.add_argument("--docs", type=Path, default=None, help="also write Data Docs into this directory")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()

    raw = make_batch(args.rows, args.bad_share)
    if args.text:
        raw = raw.astype("str")

    t0 = time.perf_counter()
    import_great_expectations()  # as ingest imports it; its cost reported apart (paid once per process)

    t_import = time.perf_counter() - t0
    validate(raw.head(2000) if not args.text else make_batch(2000, 0.0), CONFIG)  # warm-up: lazy GX imports

    t0 = time.perf_counter()
    conformed = to_contract(raw, None, None)
    t_conform = time.perf_counter() - t0

    t0 = time.perf_counter()
    outcome = validate(conformed.frame, CONFIG, args.docs)
    t_validate = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = ingest_batch(raw, None, None, CONFIG, Path(tmp) / "docs" if args.docs else None)
        t_total = time.perf_counter() - t0

    s = result.summary
    print(f"rows:                 {len(raw):,} ({'text' if args.text else 'native'} columns)")
    print(f"import GX (once):     {t_import:6.2f} s")
    print(f"conform:              {t_conform:6.2f} s")
    print(
        f"GX validate:          {t_validate:6.2f} s  ({outcome.expectations_evaluated} expectations"
        f"{', with Data Docs' if args.docs else ''})"
    )
    print(f"ingest_batch total:   {t_total:6.2f} s  (conform + validate + split + quarantine)")
    print(f"kept / quarantined:   {s['rows_valid']:,} / {s['rows_quarantined']:,}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS:             {peak_mib:,.0f} MiB")
    if args.json:
        figures = {
            "rows": len(raw),
            "import_gx_seconds": round(t_import, 3),
            "conform_seconds": round(t_conform, 3),
            "validate_seconds": round(t_validate, 3),
            "ingest_batch_seconds": round(t_total, 3),
            "expectations": outcome.expectations_evaluated,
            "peak_rss_mib": round(peak_mib),
        }
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
