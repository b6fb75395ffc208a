"""The valid batch every ingest corpus case starts from: 40 transactions as a CSV source gives them
(all strings, the source's own column names), its column mapping and validation settings."""

from __future__ import annotations

import pandas as pd

from fraudpipe.data.validate import ValidationConfig

N = 40
CONFIG = ValidationConfig(
    max_amount=10_000.0,
    min_datetime="2018-01-01T00:00:00",
    max_datetime="2019-12-31T23:59:59",
    min_rows=30,
    min_fraud_rate=0.01,
    max_fraud_rate=0.2,
    max_quarantine_share=0.5,  # the corpus breaks a few of 40 rows; its own cases test the share
)
MAPPING = {
    "transaction_id": "TX_ID",
    "tx_datetime": "WHEN",
    "customer_id": "CUSTOMER",
    "terminal_id": "TERMINAL",
    "tx_amount": "AMOUNT",
    "tx_fraud": "IS_FRAUD",
}


def csv_batch() -> pd.DataFrame:
    """40 valid transactions as a CSV source gives them; ids 1000.., 4 frauds (rate 0.1)."""
    return pd.DataFrame(
        {
            "TX_ID": [str(1000 + i) for i in range(N)],
            "WHEN": [f"2018-04-{1 + i // 24:02d} {i % 24:02d}:15:00" for i in range(N)],
            "CUSTOMER": [str(i % 7) for i in range(N)],
            "TERMINAL": [str(i % 11) for i in range(N)],
            "AMOUNT": [f"{10 + i * 1.25:.2f}" for i in range(N)],
            "IS_FRAUD": ["1" if i % 10 == 3 else "0" for i in range(N)],
        },
    ).astype("str")
