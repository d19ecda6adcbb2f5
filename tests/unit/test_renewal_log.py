"""bench/renewal_log.py: a log in the input contract whose gaps are as regular as k says and
whose mean order value moves with the purchase rate as rho says."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import pnbd_log, renewal_log

NO_DROPOUT = pnbd_log.Params(s=0.01, beta=1e9)  # lifetimes far beyond the window


def _gaps(log: pd.DataFrame) -> pd.DataFrame:
    log = log.sort_values(["user_id", "ts"])
    gap = log.groupby("user_id")["ts"].diff().dt.total_seconds() / 86400
    return log.assign(gap=gap).dropna(subset=["gap"])


def test_log_is_in_the_contract_and_reproducible():
    log = renewal_log.simulate(3, 300, k=3.0, rho=0.4)
    assert list(log.columns) == ["user_id", "ts", "amount"]
    assert log["user_id"].nunique() == 300 and (log["amount"] > 0).all()
    assert log["ts"].min() >= pnbd_log.START and log["ts"].max() < pnbd_log.END
    assert log.equals(renewal_log.simulate(3, 300, k=3.0, rho=0.4))


def test_k_sets_the_regularity_of_gaps():
    # within a customer, gaps ~ Gamma(k): coefficient of variation 1 / sqrt(k) (1 when Poisson)
    def median_cv(k):
        g = _gaps(renewal_log.simulate(5, 1500, k=k, params=NO_DROPOUT))
        by = g.groupby("user_id")["gap"].agg(["mean", "std", "size"])
        by = by[by["size"] >= 8]
        return float((by["std"] / by["mean"]).median())

    assert abs(median_cv(1.0) - 1.0) < 0.15
    assert abs(median_cv(4.0) - 0.5) < 0.1


def test_rho_ties_mean_order_value_to_the_purchase_rate():
    def corr(rho):
        log = renewal_log.simulate(7, 3000, k=1.0, rho=rho, params=NO_DROPOUT)
        by = log.groupby("user_id")["amount"].agg(["size", "mean"])
        return float(np.corrcoef(np.log(by["size"]), np.log(by["mean"]))[0, 1])

    # at rho 0 the correlation is small but not 0: the log of a mean of few orders is lower
    independent = corr(0.0)
    assert abs(independent) < 0.15
    assert corr(0.6) > independent + 0.3
    assert corr(-0.6) < independent - 0.3
