"""Synthetic transaction logs in the input contract's schema (lib/schema.py).

The generative story, one user at a time (the code does all users at once with numpy):

1. Signup. Signup times spread over [start, end - margin] with growth (the last month has
   about three times the signups of the first). A user gets a country (US majority; DE/FR pay
   in EUR, GB in GBP, the rest in USD), a device and an acquisition source.
2. First purchase. Most users buy within the hour, some within weeks, some never ("cold
   start" users, who exist in users but have no transactions).
3. Repeat purchases follow BG/NBD: while alive a buyer purchases as a Poisson process with rate
   lambda ~ Gamma(shape 0.5), and after each purchase drops out with probability
   p ~ Beta. Both means depend on the attributes (referral and email buyers are more loyal,
   paid and social ones churn faster). The Poisson clock runs in "seasonal time": intensity
   is higher in late November and December and slightly higher at weekends.
4. Spend is gamma-gamma: each buyer has a mean order value drawn from a gamma whose scale
   depends on country, device and source; each order is gamma noise around it, and about 2%
   of orders are large (Pareto-tailed, capped). Prices are set in USD and charged in the
   user's currency at that day's rate. Each order has a channel (its mix depends on the
   device), a sku (popularity is Zipf-like), a variable cost of 40-70% of the amount, and
   about 4.5% of orders are refunded (a later row, is_refund true, same currency, full or
   partial amount).
5. Browsing events: a session at signup; before a purchase a checkout, a cart add and
   sometimes a session in the preceding days; and, while a user is alive, sessions at a rate
   proportional to their purchase rate. Dead users stop browsing, so browsing carries signal
   about who will buy again.
6. Drift (drift_at): from that day on, repeat purchases are thinned (x0.6, the same as a lower
   Poisson rate), order values rise (x1.3) and a share of orders moves to the marketplace
   channel. Browsing is unchanged, so conversion drops. Drift is applied to the simulated
   history with its own random stream, so every row before drift_at is identical to the run
   without drift.

Every component draws from its own child of numpy's SeedSequence(seed): the same seed gives
identical frames. All activity lies in [start, end] and after the user's signup.
"""

from __future__ import annotations

import os
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ltv_pipeline.lib import schema
from ltv_pipeline.settings import DEFAULT_BASE_CURRENCY

CURRENCIES = (DEFAULT_BASE_CURRENCY, "EUR", "GBP")
FX_START = {"EUR": 1.08, "GBP": 1.27}  # USD value of one unit at the start
# country: (share of users, currency index into CURRENCIES, spend factor)
COUNTRIES = {"US": (0.55, 0, 1.0), "DE": (0.08, 1, 1.0), "FR": (0.07, 1, 0.95),
             "GB": (0.10, 2, 1.05), "CA": (0.08, 0, 0.9), "AU": (0.05, 0, 0.95),
             "BR": (0.04, 0, 0.6), "IN": (0.03, 0, 0.5)}
# device: (share, purchase-rate factor, dropout factor, spend factor, channel mix)
CHANNELS = ("web", "app", "store", "marketplace")
DEVICES = {"ios": (0.35, 1.1, 0.9, 1.2, (0.15, 0.70, 0.08, 0.07)),
           "android": (0.35, 0.95, 1.05, 0.85, (0.15, 0.65, 0.10, 0.10)),
           "web": (0.30, 1.0, 1.0, 1.0, (0.70, 0.05, 0.12, 0.13))}
# source: (share, probability of ever buying, purchase-rate factor, dropout factor, spend)
SOURCES = {"organic": (0.35, 0.70, 1.0, 1.0, 1.0), "paid_search": (0.20, 0.62, 0.9, 1.3, 0.95),
           "social": (0.15, 0.55, 0.8, 1.5, 0.85), "referral": (0.10, 0.80, 1.2, 0.6, 1.05),
           "email": (0.10, 0.75, 1.3, 0.7, 1.1), "affiliate": (0.10, 0.60, 0.9, 1.2, 0.9)}
N_SKUS = 300
RATE_SHAPE, RATE_MEAN = 0.5, 1 / 16  # purchases per (seasonal) day while alive
DROPOUT_MEAN, DROPOUT_CONCENTRATION = 0.45, 1.6
SPEND_MEAN_USD, SPEND_CUSTOMER_SHAPE, SPEND_ORDER_SHAPE = 45.0, 3.0, 4.0
LARGE_ORDER_SHARE, REFUND_SHARE, FULL_REFUND_SHARE = 0.02, 0.045, 0.6
BROWSE_PER_PURCHASE = 0.1  # alive-browsing sessions per unit of purchase intensity
DRIFT_RATE, DRIFT_SPEND, DRIFT_MARKETPLACE = 0.6, 1.3, 0.3
EVENT_CODES = {name: i for i, name in enumerate(schema.EVENT_NAMES)}
_STREAMS = ("users", "purchases", "spend", "refunds", "events", "fx", "drift")


def generate(n_users: int, seed: int, drift_at: date | None = None,
             start: date = date(2023, 1, 1), end: date = date(2025, 12, 31)
             ) -> dict[str, pd.DataFrame]:
    """Simulate n_users customers; returns transactions, users, events and fx_rates frames."""
    if int(n_users) < 1:
        raise ValueError(f"n_users must be at least 1, got {n_users!r}")
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(len(_STREAMS)))))
    cal = _Calendar(start, end)
    rates = _fx_rates(rngs["fx"], cal)
    u = _users(rngs["users"], int(n_users), cal)
    o = _purchases(rngs["purchases"], u, cal)
    _price(rngs["spend"], o, u, rates)
    r = _refunds(rngs["refunds"], o, cal)
    events = _events(rngs["events"], u, o, cal)
    if drift_at is not None:
        drift_t = (pd.Timestamp(drift_at) - pd.Timestamp(start)) / pd.Timedelta(1, "D")
        _drift(rngs["drift"], o, drift_t)
    return {"transactions": _transactions_frame(o, r, u, cal),
            "users": _frame(schema.USERS, user_id=u["ids"], signup_ts=cal.ts(u["t"]),
                            country=u["country"], device=u["device"],
                            acquisition_source=u["source"]),
            "events": events,
            "fx_rates": _fx_frame(rates, cal)}


def write(tables: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, Path]:
    """Write each table to out_dir/<name>.parquet atomically (temp file, then os.replace)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in tables.items():
        path = out_dir / f"{name}.parquet"
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        try:
            frame.to_parquet(tmp, engine="pyarrow", index=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths[name] = path
    return paths


class _Calendar:
    """Time as float days since start; 'seasonal time' L(t) integrates the daily intensity."""

    def __init__(self, start: date, end: date):
        self.start, self.n_days = start, (end - start).days + 1
        days = pd.date_range(start, periods=self.n_days, freq="D")
        month, dom = days.month.to_numpy(), days.day.to_numpy()
        s = np.ones(self.n_days)
        s[month == 11] = 1.15
        s[(month == 11) & (dom >= 20)] = 1.6  # Black Friday to Cyber Monday
        s[(month == 12) & (dom <= 24)] = 1.5
        s *= np.array([0.95, 0.95, 0.97, 1.0, 1.05, 1.1, 1.0])[days.weekday.to_numpy()]
        self.grid = np.arange(self.n_days + 1, dtype=float)
        self.cum = np.concatenate([[0.0], np.cumsum(s / s.mean())])
        self.dates = days.date

    def to_seasonal(self, t):
        return np.interp(t, self.grid, self.cum)

    def from_seasonal(self, y):
        return np.interp(y, self.cum, self.grid)

    def ts(self, t) -> np.ndarray:
        """Float days -> naive datetime64[ns] (UTC), floored to whole seconds."""
        sec = np.floor(np.asarray(t) * 86400.0).astype("int64").astype("timedelta64[s]")
        return (np.datetime64(self.start, "s") + sec).astype("datetime64[ns]")


def _pick(rng, table: dict, n: int) -> np.ndarray:
    shares = np.array([v[0] for v in table.values()])
    return rng.choice(len(table), size=n, p=shares / shares.sum()).astype(np.int8)


def _col(table: dict, j: int) -> np.ndarray:
    return np.array([v[j] for v in table.values()])


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Vectorised f"{prefix}{n:0{width}d}" as an object array of str."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    chars = np.empty((len(numbers), width + 1), dtype=np.uint8)
    chars[:, 0] = ord(prefix)
    chars[:, 1:] = (np.asarray(numbers, dtype=np.int64)[:, None] // powers) % 10 + ord("0")
    return chars.view(f"S{width + 1}").ravel().astype(f"U{width + 1}").astype(object)


def _users(rng, n: int, cal: _Calendar) -> dict:
    margin = min(30, cal.n_days // 10)
    growth = np.log(3.0)
    u = np.sort(rng.random(n))
    t = (cal.n_days - margin) * np.log1p(u * np.expm1(growth)) / growth
    country, device, source = (_pick(rng, table, n) for table in (COUNTRIES, DEVICES, SOURCES))
    return {"t": t, "country_i": country, "device_i": device, "source_i": source,
            "ids": _ids("u", np.arange(1, n + 1), max(7, len(str(n)))),
            "country": np.array(list(COUNTRIES), dtype=object)[country],
            "device": np.array(list(DEVICES), dtype=object)[device],
            "source": np.array(list(SOURCES), dtype=object)[source]}


def _purchases(rng, u: dict, cal: _Calendar) -> dict:
    """BG/NBD in seasonal time. Repeat purchases of a buyer are the first min(K, N) of N
    uniform points (N ~ Poisson over the rest of the window, K ~ Geometric(p) purchases before
    dropping out), drawn as order statistics from exponential spacings without drawing N."""
    n, dev, src = len(u["t"]), u["device_i"], u["source_i"]
    end = float(cal.n_days)
    quick = rng.random(n) < 0.7
    t0 = u["t"] + np.where(quick, rng.exponential(0.04, n), rng.exponential(12.0, n))
    buyer = (rng.random(n) < _col(SOURCES, 1)[src]) & (t0 < end)
    lam = rng.gamma(RATE_SHAPE, RATE_MEAN * _col(SOURCES, 2)[src] * _col(DEVICES, 1)[dev]
                    / RATE_SHAPE)
    pm = np.clip(DROPOUT_MEAN * _col(SOURCES, 3)[src] * _col(DEVICES, 2)[dev], 0.03, 0.95)
    p = np.clip(rng.beta(pm * DROPOUT_CONCENTRATION, (1 - pm) * DROPOUT_CONCENTRATION), 1e-6, 1)
    dropout_after = rng.geometric(p) - 1
    s0, s_end = cal.to_seasonal(np.minimum(t0, end)), cal.cum[-1]
    n_poisson = np.where(buyer, rng.poisson(lam * (s_end - s0)), 0)
    k = np.minimum(dropout_after, n_poisson)
    owner = np.repeat(np.arange(n), k)
    first = np.cumsum(k) - k
    cum = np.concatenate([[0.0], np.cumsum(rng.exponential(1.0, int(k.sum())))])
    spacing_sum = cum[first + k] - cum[first] + rng.gamma(n_poisson - k + 1.0)
    frac = (cum[1:] - cum[first][owner]) / spacing_sum[owner]
    t_rep = np.minimum(cal.from_seasonal(s0[owner] + frac * (s_end - s0[owner])), end - 1e-6)
    # Dead after the last purchase when dropout came within the window; else alive at end.
    last, repeats = t0.copy(), k > 0
    last[repeats] = t_rep[first[repeats] + k[repeats] - 1]
    never_lifetime = u["t"] + rng.exponential(60.0, n)
    death = np.where(buyer, np.where(dropout_after <= n_poisson, last, end),
                     np.minimum(never_lifetime, end))
    users_b = np.flatnonzero(buyer)
    u.update(lam=lam, death=death)
    return {"user": np.concatenate([users_b, owner]), "t": np.concatenate([t0[buyer], t_rep]),
            "first": np.concatenate([np.ones(len(users_b), bool), np.zeros(len(owner), bool)])}


def _price(rng, o: dict, u: dict, rates: np.ndarray) -> None:
    """Gamma-gamma spend in USD, charged in the user's currency at the day's rate."""
    n, user, m = len(u["t"]), o["user"], len(o["user"])
    scale = (SPEND_MEAN_USD * _col(COUNTRIES, 2)[u["country_i"]] * _col(DEVICES, 3)[u["device_i"]]
             * _col(SOURCES, 4)[u["source_i"]])
    customer_mean = rng.gamma(SPEND_CUSTOMER_SHAPE, scale / SPEND_CUSTOMER_SHAPE, n)
    usd = rng.gamma(SPEND_ORDER_SHAPE, customer_mean[user] / SPEND_ORDER_SHAPE, m)
    large = rng.random(m) < LARGE_ORDER_SHARE
    usd *= np.where(large, 1.0 + np.minimum(rng.pareto(1.5, m), 10.0) * 3.0, 1.0)
    o["currency_i"] = _col(COUNTRIES, 1)[u["country_i"]][user]
    o["raw_amount"] = np.maximum(usd, 1.0) / rates[o["currency_i"], o["t"].astype(np.int64)]
    mix = np.cumsum(np.array([v[4] for v in DEVICES.values()]), axis=1)
    o["channel_i"] = (rng.random(m)[:, None] > mix[u["device_i"][user]][:, :-1]).sum(1)
    popularity = 1.0 / np.arange(1, N_SKUS + 1) ** 1.1
    o["sku_i"] = np.searchsorted(np.cumsum(popularity / popularity.sum()), rng.random(m))
    o["sku_i"] = np.minimum(o["sku_i"], N_SKUS - 1)
    o["cost_share"] = rng.uniform(0.4, 0.7, m)
    o["factor"], o["keep"] = np.ones(m), np.ones(m, bool)


def _refunds(rng, o: dict, cal: _Calendar) -> dict:
    m = len(o["t"])
    refunded = rng.random(m) < REFUND_SHARE
    share = np.where(rng.random(m) < FULL_REFUND_SHARE, 1.0, rng.uniform(0.1, 0.9, m))
    t = o["t"] + 1.0 + rng.exponential(4.0, m)
    parent = np.flatnonzero(refunded & (t < cal.n_days))
    return {"parent": parent, "t": t[parent], "share": share[parent]}


def _drift(rng, o: dict, drift_t: float) -> None:
    """Shift behaviour on orders at or after drift_t (days since start); earlier orders are
    untouched, and refunds follow their order (dropped with it, scaled with it)."""
    m = len(o["t"])
    post = o["t"] >= drift_t
    o["keep"] &= ~(post & ~o["first"] & (rng.random(m) >= DRIFT_RATE))
    o["factor"] = np.where(post, DRIFT_SPEND, 1.0)
    o["channel_i"] = np.where(post & (rng.random(m) < DRIFT_MARKETPLACE),
                              CHANNELS.index("marketplace"), o["channel_i"])


def _transactions_frame(o: dict, r: dict, u: dict, cal: _Calendar) -> pd.DataFrame:
    amount = np.round(o["raw_amount"] * o["factor"], 2)
    p = r["parent"]
    refund_amount = np.clip(np.round(amount[p] * r["share"], 2), 0.01, amount[p])
    keep_o, keep_r = np.flatnonzero(o["keep"]), p[o["keep"][p]]
    rows = np.concatenate([keep_o, keep_r])  # order index of each row
    refund = np.concatenate([np.zeros(len(keep_o), bool), np.ones(len(keep_r), bool)])
    sec = np.floor(np.concatenate([o["t"][keep_o], r["t"][o["keep"][p]]]) * 86400.0)
    amt = np.concatenate([amount[keep_o], refund_amount[o["keep"][p]]])
    user = o["user"][rows]
    order = np.lexsort((refund, user, sec))
    rows, refund, sec, amt, user = rows[order], refund[order], sec[order], amt[order], user[order]
    return _frame(
        schema.TRANSACTIONS, user_id=u["ids"][user], ts=cal.ts(sec / 86400.0), amount=amt,
        transaction_id=_ids("t", np.arange(1, len(rows) + 1), max(8, len(str(len(rows))))),
        currency=np.array(CURRENCIES, dtype=object)[o["currency_i"][rows]], is_refund=refund,
        variable_cost=np.round(amt * o["cost_share"][rows], 2),
        channel=np.array(CHANNELS, dtype=object)[o["channel_i"][rows]],
        sku=_sku_names()[o["sku_i"][rows]], country=u["country"][user])


def _events(rng, u: dict, o: dict, cal: _Calendar) -> pd.DataFrame:
    """Funnel events around signups and purchases, plus sessions while alive."""
    n, m, t_user = len(u["t"]), len(o["t"]), u["t"]
    minute, code = 1.0 / 1440, EVENT_CODES
    parts = []  # (user, t, event code, sku index or -1)

    def add(mask, users, t, name, sku=None):
        mask = np.ones(len(users), bool) if mask is None else mask
        sku = np.full(len(users), -1) if sku is None else sku
        parts.append((users[mask], t[mask], np.full(int(mask.sum()), code[name]), sku[mask]))

    add(None, np.arange(n), t_user + 1.0 / 86400, "session_start")
    add(rng.random(n) < 0.5, np.arange(n), t_user + rng.uniform(1, 20, n) * minute,
        "product_view", rng.integers(0, N_SKUS, n))
    ou, ot, osku = o["user"], o["t"], o["sku_i"]
    add(rng.random(m) < 0.65, ou, ot - rng.uniform(1, 15, m) * minute, "checkout_start")
    add(rng.random(m) < 0.4, ou, ot - rng.uniform(15, 40, m) * minute, "add_to_cart", osku)
    prior = (rng.random(m) < 0.3) & ~o["first"]
    t_prior = ot - rng.uniform(0.5, 5.0, m)
    add(prior, ou, t_prior, "session_start")
    add(prior, ou, t_prior + rng.uniform(1, 10, m) * minute, "product_view", osku)
    # Alive browsing: Poisson in seasonal time between signup and death.
    s_from, s_to = cal.to_seasonal(t_user), cal.to_seasonal(u["death"])
    sessions = rng.poisson(BROWSE_PER_PURCHASE * u["lam"] * np.maximum(s_to - s_from, 0.0))
    su = np.repeat(np.arange(n), sessions)
    st = cal.from_seasonal(s_from[su] + rng.random(len(su)) * (s_to - s_from)[su])
    k = len(su)
    add(None, su, st, "session_start")
    add(rng.random(k) < 0.8, su, st + rng.uniform(1, 10, k) * minute, "product_view",
        rng.integers(0, N_SKUS, k))
    add(rng.random(k) < 0.15, su, st + rng.uniform(10, 20, k) * minute, "add_to_cart",
        rng.integers(0, N_SKUS, k))
    user, t, ev, sku = (np.concatenate(x) for x in zip(*parts))
    ok = (t >= t_user[user]) & (t < cal.n_days)
    user, sec, ev, sku = user[ok], np.floor(t[ok] * 86400.0), ev[ok], sku[ok]
    order = np.lexsort((ev, user, sec))
    user, sec, ev, sku = user[order], sec[order], ev[order], sku[order]
    metadata = np.concatenate([np.array([f'{{"sku": "{s}"}}' for s in _sku_names()],
                                        dtype=object), [None]])
    return _frame(schema.EVENTS, user_id=u["ids"][user], ts=cal.ts(sec / 86400.0),
                  event_name=np.array(schema.EVENT_NAMES, dtype=object)[ev],
                  metadata_json=metadata[sku])


def _fx_rates(rng, cal: _Calendar) -> np.ndarray:
    """rates[currency index, day]: USD value of one unit; a small daily random walk."""
    rates = np.ones((len(CURRENCIES), cal.n_days))
    for i, cur in enumerate(CURRENCIES[1:], start=1):
        steps = rng.normal(0.0, 0.003, cal.n_days)
        steps[0] = 0.0
        rates[i] = np.round(FX_START[cur] * np.exp(np.cumsum(steps)), 6)
    return rates


def _fx_frame(rates: np.ndarray, cal: _Calendar) -> pd.DataFrame:
    k = len(CURRENCIES) - 1
    return _frame(schema.FX_RATES, date=np.repeat(np.array(cal.dates, dtype=object), k),
                  currency=np.tile(np.array(CURRENCIES[1:], dtype=object), cal.n_days),
                  rate_to_base=rates[1:].T.ravel())


def _sku_names() -> np.ndarray:
    return np.array([f"sku_{i:04d}" for i in range(1, N_SKUS + 1)], dtype=object)


def _frame(contract: schema.TableContract, **columns) -> pd.DataFrame:
    assert set(columns) == set(contract.columns), f"{contract.name}: {sorted(columns)}"
    return pd.DataFrame({c: columns[c] for c in contract.columns})
