"""A transaction log that breaks two BTYD assumptions the way real logs often do: a third kind
of simulated data for #7's accuracy test (bench/accuracy_predict.py), beside `ltv generate`
(BG/NBD-like) and bench/pnbd_log.py (Pareto/NBD + Gamma-Gamma), so the method is judged on
data whose process none of the candidates assumes.

Per customer: first purchase uniform over the first 365 days from 2024-01-01; while alive,
purchases form a gamma renewal process (gaps ~ Gamma(k, 1 / (k lambda)): mean 1 / lambda as
in Pareto/NBD, but k > 1 makes buyers regular, so a gap much longer than a customer's usual
one means more than Poisson purchasing lets it mean); lambda ~ Gamma(r, 1/alpha) per day;
lifetime Exponential(mu), mu ~ Gamma(s, 1/beta) per day; each order's amount ~ Gamma(p, 1/nu)
with nu ~ Gamma(q, 1/v) per customer, where a Gaussian copula with correlation rho ties the
customer's mean order value to lambda (Gamma-Gamma assumes rho = 0); observation ends
2026-01-01.

  python -m bench.renewal_log SEED USERS OUT.csv [--k K] [--rho RHO]   (columns user_id, ts, amount)
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from scipy import stats

from bench.pnbd_log import END, START, Params, purchases


def simulate(seed: int, n_users: int, k: float = 3.0, rho: float = 0.0,
             params: Params = Params()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    span = (END - START).days
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], n_users)
    u_rate, u_spend = stats.norm.cdf(z[:, 0]), stats.norm.cdf(z[:, 1])
    lam = stats.gamma.ppf(u_rate, params.r, scale=1 / params.alpha)
    # a high rate with rho > 0 goes with a LOW nu, i.e. a high mean order p / nu
    nu = stats.gamma.ppf(1.0 - u_spend, params.q, scale=1 / params.v)
    lam, nu = np.maximum(lam, 1e-6), np.maximum(nu, 1e-6)
    mu = rng.gamma(params.s, 1 / params.beta, n_users)
    birth = rng.uniform(0, 365, n_users)
    with np.errstate(divide="ignore", over="ignore"):  # mu ~ 0: a lifetime past the window
        stop = np.minimum(span, birth + rng.exponential(1 / mu))
    return purchases(rng, birth, stop, lambda i, n: rng.gamma(k, 1 / (k * lam[i]), n), nu, params.p)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.renewal_log")
    ap.add_argument("seed", type=int)
    ap.add_argument("users", type=int)
    ap.add_argument("out")
    ap.add_argument("--k", type=float, default=3.0, help="gap shape: 1 is Poisson, larger is more regular")
    ap.add_argument("--rho", type=float, default=0.0, help="copula correlation of rate and mean order value")
    a = ap.parse_args(argv)
    log = simulate(a.seed, a.users, a.k, a.rho)
    log.to_csv(a.out, index=False)
    print(f"{len(log):,} rows, {log['user_id'].nunique():,} users, mean order {log['amount'].mean():.2f}: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
