"""A Pareto/NBD + Gamma-Gamma transaction log, independent of `ltv generate`: a second kind of
simulated data for #7's accuracy test (bench/accuracy_predict.py), so the method is not judged
on our own generator alone.

Per customer: first purchase uniform over the first 365 days from 2024-01-01; purchases a
Poisson process with rate lambda ~ Gamma(r, 1/alpha) per day while alive; lifetime
Exponential(mu), mu ~ Gamma(s, 1/beta) per day; each order's amount ~ Gamma(p, 1/nu),
nu ~ Gamma(q, 1/v) per customer (Gamma-Gamma); observation ends 2026-01-01. Defaults: mean
rate 0.015 a day, mean lifetime about 430 days, mean order about 30.

simulate_bgnbd is the BG/NBD + Gamma-Gamma process instead (the other lifetimes baseline's own
model): the same purchase rates, but a customer drops out right after each repeat purchase with
probability p ~ Beta(a, b) (defaults 0.8 and 2.5, CDNOW's fitted values: about 3 repeat purchases
before dropping out).

simulate_staggered is the Pareto/NBD process with first purchases uniform over the first
`births` days (630: up to a week before 2025-09-30), as in a shop that keeps acquiring, so at a
late cutoff many customers are young (README: staggered acquisition, seeds 13 and 17).

  python -m bench.pnbd_log SEED USERS OUT.csv [--bgnbd | --staggered]
  (columns user_id, ts, amount)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

START, END = pd.Timestamp("2024-01-01"), pd.Timestamp("2026-01-01")


@dataclass(frozen=True)
class Params:
    r: float = 0.6
    alpha: float = 40.0
    s: float = 0.7
    beta: float = 300.0
    p: float = 6.0
    q: float = 4.0
    v: float = 15.0
    a: float = 0.8
    b: float = 2.5


def simulate(seed: int, n_users: int, params: Params = Params()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1 / params.alpha, n_users)
    mu = rng.gamma(params.s, 1 / params.beta, n_users)
    nu = rng.gamma(params.q, 1 / params.v, n_users)
    birth = rng.uniform(0, 365, n_users)
    return _poisson_until_dropout(rng, birth, lam, mu, nu, params.p)


def simulate_staggered(seed: int, n_users: int, births: float = 630.0,
                       params: Params = Params()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1 / params.alpha, n_users)
    nu = rng.gamma(params.q, 1 / params.v, n_users)
    birth = np.sort(rng.uniform(0, births, n_users))
    mu = rng.gamma(params.s, 1 / params.beta, n_users)
    return _poisson_until_dropout(rng, birth, lam, mu, nu, params.p)


def _poisson_until_dropout(rng, birth, lam, mu, nu, p: float) -> pd.DataFrame:
    """Pareto/NBD purchases: from day birth[i], Poisson at rate lam[i] until an exponential
    lifetime of rate mu[i] (or the window's end) ends."""
    span = (END - START).days
    with np.errstate(divide="ignore", over="ignore"):  # mu ~ 0: a lifetime past the window
        stop = np.minimum(span, birth + rng.exponential(1 / mu))
    return purchases(rng, birth, stop, lambda i, n: rng.exponential(1 / lam[i], n), nu, p)


def simulate_bgnbd(seed: int, n_users: int, params: Params = Params()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    span = (END - START).days
    lam = rng.gamma(params.r, 1 / params.alpha, n_users)
    drop = rng.beta(params.a, params.b, n_users)
    nu = rng.gamma(params.q, 1 / params.v, n_users)
    birth = rng.uniform(0, 365, n_users)
    repeats = rng.geometric(drop)  # the repeat purchase after which the customer drops out
    users, days = [], []
    for i in range(n_users):
        t = birth[i] + np.cumsum(np.concatenate([[0.0], rng.exponential(1 / lam[i], repeats[i])]))
        t = t[t < span]
        users.append(np.full(t.size, i))
        days.append(t)
    return _frame(rng, np.concatenate(users), np.concatenate(days), nu, params.p)


def purchases(rng, birth, stop, draw_gaps, nu, p: float) -> pd.DataFrame:
    """The log of customers i whose first purchase is at day birth[i] and whose later ones follow
    at gaps draw_gaps(i, n) (n at a time) before day stop[i]; each order's amount ~
    Gamma(p, 1 / nu[i])."""
    users, days = [], []
    for i in range(len(birth)):
        t = [birth[i]]
        while t[-1] < stop[i]:  # draw gaps in blocks until the process passes the lifetime
            t.extend(t[-1] + np.cumsum(draw_gaps(i, 16)))
        t = np.asarray(t)
        t = np.concatenate([[birth[i]], t[1:][t[1:] < stop[i]]])
        users.append(np.full(t.size, i))
        days.append(t)
    return _frame(rng, np.concatenate(users), np.concatenate(days), nu, p)


def _frame(rng, user, day, nu, p: float) -> pd.DataFrame:
    """The log of purchases at day[j] by customer user[j], each amount ~ Gamma(p, 1 / nu[user])."""
    amount = np.round(rng.gamma(p, 1 / nu[user]), 2)
    return pd.DataFrame({"user_id": [f"u{i:06d}" for i in user],
                         "ts": START + pd.to_timedelta(day, unit="D"),
                         "amount": np.maximum(amount, 0.01)})


def main(argv: list[str]) -> int:
    seed, users, out = int(argv[0]), int(argv[1]), argv[2]
    kind = simulate_bgnbd if "--bgnbd" in argv[3:] else simulate
    log = (simulate_staggered if "--staggered" in argv[3:] else kind)(seed, users)
    log.to_csv(out, index=False)
    print(f"{len(log):,} rows, {log['user_id'].nunique():,} users, mean order {log['amount'].mean():.2f}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
