"""bench/pnbd_log.py: a Pareto/NBD + Gamma-Gamma log in the input contract, with the moments its
parameters imply."""

from __future__ import annotations

import numpy as np

from bench import pnbd_log


def test_log_is_in_the_contract_and_reproducible():
    log = pnbd_log.simulate(3, 300)
    assert list(log.columns) == ["user_id", "ts", "amount"]
    assert log["user_id"].nunique() == 300 and (log["amount"] > 0).all()
    assert log["ts"].min() >= pnbd_log.START and log["ts"].max() < pnbd_log.END
    first = log.groupby("user_id")["ts"].min()
    assert (first < pnbd_log.START + np.timedelta64(365, "D")).all()
    assert log.equals(pnbd_log.simulate(3, 300))


def test_moments_follow_the_parameters():
    prm = pnbd_log.Params()
    log = pnbd_log.simulate(1, 4000, prm)
    # Gamma-Gamma: E[amount] = p * E[1 / nu] = p * v / (q - 1)
    assert abs(log["amount"].mean() / (prm.p * prm.v / (prm.q - 1)) - 1) < 0.05
    # with no dropout (s tiny, beta huge: lifetimes far beyond the window) repeat purchases
    # per customer per day alive match E[lambda] = r / alpha
    alive = pnbd_log.Params(s=0.01, beta=1e9)
    log = pnbd_log.simulate(2, 4000, alive)
    first = log.groupby("user_id")["ts"].min()
    exposure = ((pnbd_log.END - first).dt.total_seconds() / 86400).sum()
    assert abs((len(log) - 4000) / exposure / (alive.r / alive.alpha) - 1) < 0.08


def test_bgnbd_log_drops_out_after_a_geometric_number_of_repeats():
    # rates so high that every customer reaches its dropout inside the window: the repeat
    # purchases per customer then follow the geometric law, E[K] = E[1 / p] = (a + b - 1) / (a - 1)
    prm = pnbd_log.Params(r=50.0, alpha=100.0, a=3.0, b=4.0)
    log = pnbd_log.simulate_bgnbd(4, 4000, prm)
    assert list(log.columns) == ["user_id", "ts", "amount"] and log["user_id"].nunique() == 4000
    assert log["ts"].max() < pnbd_log.START + np.timedelta64(600, "D")  # all dropped out well before END
    repeats = log.groupby("user_id").size() - 1
    assert (repeats >= 1).all()  # BG/NBD: nobody drops out before a repeat purchase
    assert abs(repeats.mean() / ((prm.a + prm.b - 1) / (prm.a - 1)) - 1) < 0.06
    assert log.equals(pnbd_log.simulate_bgnbd(4, 4000, prm))


def test_staggered_log_keeps_acquiring_customers_until_births():
    log = pnbd_log.simulate_staggered(5, 2000, births=600.0)
    assert list(log.columns) == ["user_id", "ts", "amount"] and log["user_id"].nunique() == 2000
    days = (log.groupby("user_id")["ts"].min() - pnbd_log.START).dt.total_seconds() / 86400
    assert days.max() < 600 and abs(days.mean() / 300 - 1) < 0.05  # uniform over [0, 600)
    assert (days > 365).mean() > 0.35  # the plain simulate's first purchases stop at day 365
    assert log.equals(pnbd_log.simulate_staggered(5, 2000, births=600.0))
