"""customer_btyd_summary reproduces lifetimes' own summary on CDNOW_sample, row for row."""

from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
import pytest
from lifetimes.utils import summary_data_from_transaction_data

from ltv_pipeline.lib.dbt_vars import dbt_vars

CUTOFF = "1997-09-30"
SAMPLE = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_sample.txt"


@pytest.fixture(scope="module")
def cdnow_sample() -> pd.DataFrame:
    df = pd.read_csv(
        SAMPLE, sep=r"\s+", header=None,
        names=["customer_id", "customer_index", "date", "number_of_cds", "dollar_value"],
        dtype={"customer_id": str, "date": str},
    )
    df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
    return df


@pytest.fixture(scope="module")
def built(dbt_warehouse, write_raw_tables, cdnow_sample):
    write_raw_tables(
        dbt_warehouse.path,
        transactions=pd.DataFrame({
            "user_id": cdnow_sample["customer_id"],
            "ts": cdnow_sample["date"],
            "amount": cdnow_sample["dollar_value"].astype(float),
        }),
    )
    dbt_warehouse.build(dbt_vars([CUTOFF], 273))
    return dbt_warehouse


def test_btyd_summary_equals_lifetimes_on_cdnow_sample(built, cdnow_sample):
    expected = summary_data_from_transaction_data(
        cdnow_sample, "customer_id", "date", "dollar_value",
        observation_period_end=CUTOFF, freq="D",
    ).sort_index()
    got = built.query(
        f"select * from marts.customer_btyd_summary where cutoff_date = date '{CUTOFF}'"
    ).set_index("user_id").sort_index()
    assert len(expected) == 2357
    assert list(got.index) == list(expected.index)
    for column in ["frequency", "recency", "T", "monetary_value"]:
        np.testing.assert_allclose(
            got[column].astype(float).to_numpy(), expected[column].to_numpy(),
            rtol=0, atol=1e-9, err_msg=column,
        )


def test_features_and_labels_cover_every_cdnow_customer(built, cdnow_sample):
    counts = built.query(f"""
        select
            (select count(*) from marts.customer_features where cutoff_date = date '{CUTOFF}') as features,
            (select count(*) from marts.customer_labels where cutoff_date = date '{CUTOFF}') as labels,
            (select sum(value) from marts.customer_labels where cutoff_date = date '{CUTOFF}') as label_value,
            (select bool_and(is_window_complete) from marts.customer_labels) as complete
    """).iloc[0]
    assert counts["features"] == counts["labels"] == 2357
    # 273 days after 1997-09-30 is the last day of the log (1998-06-30): the whole holdout.
    holdout = cdnow_sample.loc[cdnow_sample["date"] > CUTOFF, "dollar_value"].sum()
    assert counts["label_value"] == pytest.approx(holdout)
    assert counts["complete"]
