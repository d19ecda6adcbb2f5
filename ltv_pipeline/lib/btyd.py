"""BTYD ("buy till you die") models on a day-level RFM summary, with robust fitting.

Summary: one row per customer (user_id, frequency, recency, T, monetary_value), lifetimes
definitions at day granularity (DESIGN.md, "BTYD summaries"), so parameters are in day units.
Count models (BG/NBD, Pareto/NBD, MBG/NBD) are fitted on the unique (frequency, recency, T)
rows with weights= (same likelihood, far fewer rows), trying the penalizers in order (0, plain
maximum likelihood, first) and keeping the first that converges with finite forecasts; every
attempt and why it failed is recorded. If none does, or the data cannot identify the model,
the flagged fallback is the historical-rate model (no dropout process, so p_alive = 1):
    rate_i = (frequency_i + rate_pop * T_mean) / (T_i + T_mean),  rate_pop = sum(freq) / sum(T)
    expected_purchases = rate_i * horizon_days
Spend: Gamma-Gamma on repeat buyers with positive monetary_value; everyone else gets the
population mean spend p * v / (q - 1); too few repeat buyers: the mean positive order value.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# The lifetimes fitter classes by import path, imported when a fit first needs them (fitter_class):
# lifetimes takes about 1.6 s to import and the Dagster definitions import this module.
COUNT_MODELS = {
    "bgnbd": ("lifetimes.BetaGeoFitter", ("r", "alpha", "a", "b")),
    # lifetimes' ParetoNBDFitter with its likelihood computed faster (lib/btyd_pareto.py)
    "pareto": ("ltv_pipeline.lib.btyd_pareto.ParetoNBDFast", ("r", "alpha", "s", "beta")),
    "mbgnbd": ("lifetimes.ModifiedBetaGeoFitter", ("r", "alpha", "a", "b")),
}
GAMMA_GAMMA = "lifetimes.GammaGammaFitter"
FALLBACK = "historical_rate"
DEFAULT_PENALIZERS = (0.0, 0.001, 0.01, 0.1)
MIN_CUSTOMERS = 20  # below this a 4-parameter fit says nothing: use the historical-rate model
MIN_REPEAT_BUYERS = 20  # below this Gamma-Gamma is not fitted: use the mean order value
_FIT_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)  # ConvergenceError is a ValueError
_KEYS = ["frequency", "recency", "T"]


def fitter_class(path: str) -> type:
    """The class at an import path ("lifetimes.BetaGeoFitter"), its module imported now."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _fitter_state(fitter: Any) -> dict[str, Any] | None:
    """What a fitted lifetimes object needs to forecast: its class and parameters. lifetimes
    fitters keep local lambdas and cannot be pickled; they are rebuilt from this on load."""
    if fitter is None:
        return None
    return {"cls": type(fitter), "params": fitter.params_.copy(),
            "penalizer": getattr(fitter, "penalizer_coef", 0.0)}


def _fitter_from_state(state: dict[str, Any] | None) -> Any:
    if state is None:
        return None
    fitter = state["cls"](penalizer_coef=state["penalizer"])
    fitter.params_ = state["params"]
    return fitter


class _PicklableFitter:
    """Pickles the lifetimes fitter as (class, params) and rebuilds it on load."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["fitter"] = _fitter_state(state.get("fitter"))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["fitter"] = _fitter_from_state(state.get("fitter"))
        self.__dict__.update(state)


@dataclass
class BTYDFit(_PicklableFitter):
    """A count model: params in day units, fitter the lifetimes object. When fallback is True,
    fitter is None and params are the historical-rate model's rate_per_day and prior_days."""

    model: str
    params: dict[str, float]
    penalizer: float | None
    converged: bool
    fallback: bool
    notes: list[str]
    fitter: Any = None
    n_customers: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)  # penalizer, ok, reason
    base_rate: dict[str, float] = field(default_factory=dict)  # the fallback's parameters
    segment_by: str | None = None
    segments: dict[Any, BTYDFit] = field(default_factory=dict)


@dataclass
class SpendFit(_PicklableFitter):
    """Gamma-Gamma spend model (params p, q, v) or, when fallback, a flat mean order value."""

    params: dict[str, float]
    population_mean: float
    fallback: bool
    penalizer: float | None
    n_fitted: int
    notes: list[str]
    fitter: Any = None

    def expected_spend(self, summary: pd.DataFrame) -> np.ndarray:
        """Expected spend per purchase: Gamma-Gamma's posterior mean of the customer's spend;
        the population mean where Gamma-Gamma does not apply.

        The parameters are fitted as lifetimes fits them (repeat purchase days only: DESIGN's
        published estimates). The posterior conditions on EVERY purchase day the customer has,
        the first included, when the summary carries mean_order_value (the mean of all purchase
        days' totals: every summary the pipeline builds does): x = frequency + 1 days of mean
        mean_order_value. Gamma-Gamma's story draws every purchase of a customer from the same
        spend distribution, so the first one is evidence too; lifetimes' convention drops it and
        gives one-time buyers the population mean. Conditioning on it raised the normalized
        Gini of BG/NBD + Gamma-Gamma at 7 of 8 accuracy cases (CDNOW's classic split 0.672 ->
        0.710; README). Without the column: repeat days only (lifetimes)."""
        f, m = summary["frequency"].to_numpy(float), summary["monetary_value"].to_numpy(float)
        if "mean_order_value" in summary.columns:
            f, m = f + 1.0, summary["mean_order_value"].to_numpy(float)
        spend, ok = np.full(len(f), self.population_mean, dtype=float), (f > 0) & (m > 0)
        if self.fitter is not None and ok.any():
            with np.errstate(all="ignore"):
                spend[ok] = np.asarray(self.fitter.conditional_expected_average_profit(f[ok], m[ok]))
        spend[~np.isfinite(spend) | (spend < 0)] = self.population_mean
        return spend


def summary_from_transactions(df: pd.DataFrame, observation_end, user_col: str = "user_id",
                              ts_col: str = "ts", amount_col: str | None = "amount", *,
                              order_value: bool = False) -> pd.DataFrame:
    """lifetimes' summary_data_from_transaction_data(freq="D"), from day-level totals.

    Keeps rows whose day is <= observation_end (history is ts < D + 1 day); tz-aware timestamps
    count at their wall-clock day. order_value=True adds mean_order_value: the mean of all
    purchase days' totals, the first included (the spend fallback for one-time buyers)."""
    missing = [c for c in (user_col, ts_col, amount_col) if c is not None and c not in df.columns]
    if missing:
        raise ValueError(f"transactions lack column(s) {missing}; have {list(df.columns)}")
    ts = pd.to_datetime(df[ts_col])
    ts = ts.dt.tz_localize(None) if ts.dt.tz is not None else ts
    for col, bad in ((user_col, df[user_col].isna()), (ts_col, ts.isna())):
        if bad.any():
            raise ValueError(f"transactions.{col} has {int(bad.sum())} null value(s), e.g. rows "
                             f"{list(df.index[bad.to_numpy()][:5])}")
    end = pd.Timestamp(observation_end).floor("D")
    # Integer work, not a groupby on the id strings (1M users' day table: 4.5 s -> ~1 s):
    # users coded in sorted order (the output is sorted by user_id, as a groupby's), each
    # (user, day) a key user * span + day, so sorted unique keys are the users' day rows in
    # order and per-user aggregates are reductions over contiguous runs.
    end_day = end.to_datetime64().astype("datetime64[D]").astype(np.int64)
    day = ts.dt.floor("D").to_numpy("datetime64[D]").astype(np.int64)
    keep = day <= end_day
    cols = ["user_id", *_KEYS, "monetary_value"] + (["mean_order_value"] if order_value else [])
    if not keep.any():
        return pd.DataFrame({c: pd.Series(dtype=object if c == "user_id" else float) for c in cols})
    codes, users = pd.factorize(df[user_col].to_numpy()[keep], sort=True)
    day = day[keep]
    amount = df[amount_col].to_numpy(float)[keep] if amount_col else np.zeros(len(day))
    lo = int(day.min())
    span = int(day.max()) - lo + 1
    keys, inv = np.unique(codes.astype(np.int64) * span + (day - lo), return_inverse=True)
    day_total = np.bincount(inv.ravel(), weights=amount, minlength=len(keys))
    user_of, day_of = keys // span, keys % span + lo
    starts = np.flatnonzero(np.r_[True, user_of[1:] != user_of[:-1]])
    n = np.diff(np.r_[starts, len(keys)])
    first, last = day_of[starts], day_of[np.r_[starts[1:], len(keys)] - 1]
    run = np.repeat(np.arange(len(starts)), n)  # each day row's user (position in the output)
    repeat = np.ones(len(keys), dtype=bool)
    repeat[starts] = False
    total = np.bincount(run, weights=day_total, minlength=len(starts))
    repeat_total = np.bincount(run[repeat], weights=day_total[repeat], minlength=len(starts))
    out = pd.DataFrame({"user_id": users[user_of[starts]], "frequency": n - 1,
                        "recency": (last - first).astype(float), "T": (end_day - first).astype(float),
                        "monetary_value": np.where(n > 1, repeat_total / np.maximum(n - 1, 1), 0.0),
                        "mean_order_value": total / n})
    return out[cols]


def check_summary(summary: pd.DataFrame) -> None:
    """Raise ValueError naming the rule and sample user_ids when the summary is inconsistent."""
    missing = [c for c in ("user_id", *_KEYS, "monetary_value") if c not in summary.columns]
    if missing:
        raise ValueError(f"BTYD summary lacks column(s) {missing}; have {list(summary.columns)}")
    f, r, t, m = (summary[c].to_numpy(float) for c in (*_KEYS, "monetary_value"))
    rules = {
        "null or non-finite values": ~np.isfinite(np.stack([f, r, t, m])).all(axis=0),
        "frequency not a non-negative integer": (f < 0) | (f != np.round(f)),
        "recency < 0 or recency > T": (r < 0) | (r > t),
        "recency != 0 while frequency == 0": (f == 0) & (r != 0),
    }
    for rule, bad in rules.items():
        if bad.any():
            raise ValueError(f"BTYD summary: {int(bad.sum())} row(s) with {rule}, e.g. user_id "
                             f"{summary['user_id'].to_numpy()[bad][:5].tolist()}")


NONFINITE = "non-finite forecasts"
MAX_NONFINITE_SHARE = 0.001
# When every penalizer leaves more than MAX_NONFINITE_SHARE, the lowest penalizer that leaves at
# most this share is taken (its few customers get the historical-rate forecast, row by row),
# rather than the historical-rate model for everyone.
MAX_NONFINITE_SHARE_LAST = 0.01
# A Pareto/NBD restart that lowers lifetimes' objective (negative log-likelihood / mean weight)
# by no more than this has found no better maximum: the fit has settled.
PARETO_SETTLED_NLL = 1e-6


class NonFiniteForecasts(ValueError):
    """A fit rejected only because lifetimes' forecasts are non-finite for more than the allowed
    share of customers. It keeps the fit and the share, for the last-resort rule."""

    def __init__(self, fitter: Any, patterns: int, share: float):
        super().__init__(f"{NONFINITE} for {patterns} patterns ({share:.2%} of customers)")
        self.fitter, self.share = fitter, share


@contextlib.contextmanager
def _quiet():
    """Silence the RuntimeWarnings lifetimes floods while it explores the parameter space."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _fit_count(model: str, rows: pd.DataFrame, penalizer: float, options: dict) -> Any:
    """One lifetimes fit on weighted unique rows; raises ValueError with the reason on failure
    (NonFiniteForecasts when only the forecasts' non-finite share is too large)."""
    path, names = COUNT_MODELS[model]
    cls = fitter_class(path)
    f, r, t, w = (rows[c].to_numpy() for c in (*_KEYS, "w"))
    kwargs, coef = dict(options), penalizer
    if model == "pareto":
        # lifetimes divides the Pareto/NBD log-likelihood by mean(weights), not sum(weights):
        # scale the penalizer so it weighs the same against the mean log-likelihood as in BG/NBD.
        coef = penalizer * len(rows)
        kwargs = {"tol": 1e-6, "maxiter": 10000, **kwargs}
        if "initial_params" not in kwargs:
            kwargs["initial_params"] = _pareto_start(rows, penalizer, t)
    with _quiet():
        fitter = cls(penalizer_coef=coef).fit(f, r, t, weights=w, **kwargs)
        if model == "pareto":
            # lifetimes' Nelder-Mead reports no convergence: restart from the solution (the
            # standard check for a stalled simplex) until the parameters stop moving or the
            # likelihood stops rising. Where the maximum lies at s -> 0 (no dropout: regular
            # buyers) the likelihood is flat along a ridge of beta, so beta never settled and
            # the fit failed here after three restarts, and the ladder went on to a penalizer.
            for _ in range(3):
                old, old_nll = fitter.params_.to_numpy(), fitter._negative_log_likelihood_
                kwargs["initial_params"] = old * np.array([1.0, fitter._scale, 1.0, fitter._scale])
                fitter = cls(penalizer_coef=coef).fit(f, r, t, weights=w, **kwargs)
                gain = old_nll - fitter._negative_log_likelihood_
                if np.allclose(fitter.params_.to_numpy(), old, rtol=1e-3, atol=0) or gain <= PARETO_SETTLED_NLL:
                    break
            else:
                raise ValueError("Nelder-Mead did not settle: restarts kept moving the parameters")
        params = np.array([fitter.params_[n] for n in names], dtype=float)
        if not (np.isfinite(params).all() and (params > 0).all()):
            raise ValueError(f"parameters not finite and positive: {dict(zip(names, params))}")
        probe = np.isfinite(fitter.conditional_expected_number_of_purchases_up_to_time(
            max(t.max(), 1.0), f, r, t)) & np.isfinite(fitter.conditional_probability_alive(f, r, t))
        # lifetimes' closed forms overflow for a few extreme patterns (e.g. Pareto/NBD's
        # hypergeometric terms): predict() backs those rows off one by one; a fit whose
        # forecasts fail for more than MAX_NONFINITE_SHARE of customers is rejected.
        bad = float(w[~probe].sum()) / float(w.sum())
        if bad > MAX_NONFINITE_SHARE:
            raise NonFiniteForecasts(fitter, int((~probe).sum()), bad)
    return fitter


def _pareto_start(rows: pd.DataFrame, penalizer: float, T: np.ndarray) -> np.ndarray:
    """Where Nelder-Mead starts a Pareto/NBD fit, in lifetimes' scaled time: BG/NBD's (r, alpha)
    on the same rows, s = 1, beta = alpha (both models draw purchases from the same
    gamma-Poisson, and BG/NBD fits in a tenth of the time). On 1M-user cutoffs (22k patterns)
    the fit took 0.6-0.8 s instead of 1.7-2.1 s from lifetimes' start (all ones), to the same
    optimum (5 digits). All ones when BG/NBD does not fit. The BG/NBD fit of fit_btyd on the
    same rows is reused when it converged at this penalizer (the same call, so the same fit)."""
    from lifetimes.utils import _scale_time

    known = _FITS.get(_fit_key("bgnbd", rows, DEFAULT_PENALIZERS, {}))
    if known is not None and known[0] is not None and known[1] == penalizer:
        bg = known[0]
    else:
        try:
            bg = _fit_count("bgnbd", rows, penalizer, {})
        except _FIT_ERRORS:
            return np.ones(4)
    r, alpha = float(bg.params_["r"]), float(bg.params_["alpha"]) * _scale_time(T)
    return np.array([r, alpha, 1.0, alpha])


def _fit_gg(f: np.ndarray, m: np.ndarray, penalizer: float) -> Any:
    with _quiet():
        gg = fitter_class(GAMMA_GAMMA)(penalizer_coef=penalizer).fit(f, m)
    p, q, v = (float(gg.params_[k]) for k in "pqv")
    if not (np.isfinite([p, q, v]).all() and min(p, v) > 0 and q > 1):
        raise ValueError(f"p={p}, q={q}, v={v}: need finite p, v > 0 and q > 1 (a finite mean spend)")
    return gg


def _ladder(penalizers, attempt, notes: list[str],
            failures: list[tuple[float, Exception]] | None = None) -> tuple[Any, float | None, list[dict]]:
    """attempt(penalizer) for each penalizer in order until one succeeds; each failure's
    (penalizer, exception) is appended to `failures` when given."""
    attempts = []
    for pen in map(float, penalizers):
        try:
            with contextlib.redirect_stdout(io.StringIO()) as printed:  # lifetimes prints failures
                result = attempt(pen)
        except _FIT_ERRORS as exc:
            scipy = re.search(r"message: *(.+)", printed.getvalue())  # the optimizer's own reason
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}" + (
                f" (scipy: {scipy.group(1).strip()})" if scipy else "")
            attempts.append({"penalizer": pen, "ok": False, "reason": reason})
            notes.append(f"penalizer {pen}: failed ({reason})")
            if failures is not None:
                failures.append((pen, exc))
            continue
        attempts.append({"penalizer": pen, "ok": True, "reason": ""})
        return result, pen, attempts
    return None, None, attempts


def _base_rate(summary: pd.DataFrame) -> dict[str, float]:
    """The historical-rate model's parameters: population repeat rate per day and mean T."""
    total_t, n = float(summary["T"].sum()), len(summary)
    return {"rate_per_day": float(summary["frequency"].sum()) / total_t if total_t > 0 else 0.0,
            "prior_days": total_t / n if n else 0.0}


# Fits already made in this process, keyed by everything a fit depends on: the model, the
# weighted (frequency, recency, T) rows, the penalizers and the options. One `ltv predict`
# fits the same cutoff's summary several times (btyd_models, rfm_stack's internal cutoffs,
# the backtest's origins and their rfm_stack cutoffs overlap on the same 30-day grid); a
# Pareto/NBD fit is seconds per 25k patterns. Same input, same result: the cache is exact.
_FITS: dict[tuple, tuple] = {}
MAX_CACHED_FITS = 48


def _fit_key(model: str, rows: pd.DataFrame, penalizers, options: dict) -> tuple:
    digest = hashlib.blake2b(digest_size=16)
    for c in (*_KEYS, "w"):
        digest.update(np.ascontiguousarray(rows[c].to_numpy(float)).tobytes())
    return (model, tuple(map(float, penalizers)), repr(sorted(options.items())), len(rows),
            digest.hexdigest())


def _remember(key: tuple, value: tuple) -> None:
    if len(_FITS) >= MAX_CACHED_FITS:
        _FITS.pop(next(iter(_FITS)))  # the oldest
    _FITS[key] = value


def _last_resort(failures: list[tuple[float, Exception]], attempts: list[dict],
                 notes: list[str]) -> tuple[Any, float | None, list[dict]]:
    """When every penalizer failed only on its non-finite share (e.g. Pareto/NBD on synthetic
    logs: 3 extreme patterns, 0.1% of customers, overflow at every penalizer; the fit is sound
    for everyone else), the lowest penalizer whose share is at most MAX_NONFINITE_SHARE_LAST,
    as that fit already made; (None, None, attempts) otherwise."""
    if not failures or not all(isinstance(exc, NonFiniteForecasts) for _, exc in failures):
        return None, None, attempts
    for pen, exc in failures:
        if exc.share <= MAX_NONFINITE_SHARE_LAST:
            notes.append(f"every penalizer left non-finite forecasts for more than "
                         f"{MAX_NONFINITE_SHARE:.1%} of customers: took penalizer {pen}, non-finite "
                         f"for {exc.share:.2%} of customers (at most {MAX_NONFINITE_SHARE_LAST:.0%}; "
                         f"those get the {FALLBACK} forecast)")
            return exc.fitter, pen, attempts + [{"penalizer": pen, "ok": True, "reason": "",
                                                 "max_nonfinite_share": MAX_NONFINITE_SHARE_LAST}]
    return None, None, attempts


def _fit_one(summary, model, penalizers, min_customers, options) -> BTYDFit:
    n, base = len(summary), _base_rate(summary)
    fit = BTYDFit(model, dict(base), None, False, True, [], n_customers=n, base_rate=base)
    if n < min_customers:
        fit.notes.append(f"{n} customer(s) < min_customers={min_customers}: {model} not fitted; "
                         f"using the {FALLBACK} model")
    elif (summary["frequency"] == 0).all():  # also covers T == 0 for everyone
        fit.notes.append(f"no repeat purchases: {model} is not identified; using the {FALLBACK} "
                         "model, which forecasts 0 purchases")
    else:
        rows = summary.groupby(_KEYS, as_index=False).size().rename(columns={"size": "w"})
        key = _fit_key(model, rows, penalizers, options)
        if key not in _FITS:
            notes: list[str] = []
            failures: list[tuple[float, Exception]] = []
            attempt = lambda p: _fit_count(model, rows, p, options)  # noqa: E731
            fitter, pen, attempts = _ladder(penalizers, attempt, notes, failures)
            if fitter is None:
                fitter, pen, attempts = _last_resort(failures, attempts, notes)
            _remember(key, (fitter, pen, attempts, notes))
        fitter, pen, attempts, notes = _FITS[key]
        fit.attempts, fit.notes = [dict(a) for a in attempts], list(notes)
        if fitter is None:
            fit.notes.append(f"no penalizer in {tuple(penalizers)} converged: using the {FALLBACK} model")
            return fit
        fit.params = {name: float(fitter.params_[name]) for name in COUNT_MODELS[model][1]}
        fit.penalizer, fit.converged, fit.fallback, fit.fitter = pen, True, False, fitter
        fit.notes.append(f"converged with penalizer {pen} on {len(rows)} unique (frequency, recency, T) "
                         f"rows for {n} customers")
    return fit


def fit_btyd(summary: pd.DataFrame, model: str = "bgnbd", penalizers=DEFAULT_PENALIZERS, *,
             segment_by: str | None = None, min_segment_customers: int = 500,
             min_customers: int = MIN_CUSTOMERS, fit_options: dict | None = None) -> BTYDFit:
    """Fit a count model ("bgnbd", "pareto", "mbgnbd"); never raises for hard-to-fit data.

    segment_by: one fit per value of that column when every segment has at least
    min_segment_customers customers and none is null, else one pooled fit with a note saying
    why. fit_options go to the lifetimes fit (scipy minimize options such as maxiter)."""
    if model not in COUNT_MODELS:
        raise ValueError(f"unknown BTYD model {model!r}; choose one of {sorted(COUNT_MODELS)}")
    check_summary(summary)
    args = (model, penalizers, min_customers, dict(fit_options or {}))
    if segment_by is None:
        return _fit_one(summary, *args)
    if segment_by not in summary.columns:
        raise ValueError(f"segment_by column {segment_by!r} not in the summary")
    keys = summary[segment_by]
    sizes = keys.value_counts()
    small = sizes[(sizes > 0) & (sizes < min_segment_customers)].to_dict()
    why = (f"{int(keys.isna().sum())} customer(s) with null {segment_by}" if keys.isna().any() else
           f"segment(s) {small} below min_segment_customers={min_segment_customers}" if small else
           "" if len(summary) else "no customers")
    if why:
        fit = _fit_one(summary, *args)
        fit.notes.insert(0, f"pooled fit instead of per-{segment_by} fits: {why}")
        return fit
    segs = {k: _fit_one(sub, *args) for k, sub in summary.groupby(segment_by, observed=True)}
    return BTYDFit(model, {}, None, all(s.converged for s in segs.values()),
                   any(s.fallback for s in segs.values()), [f"fitted per {segment_by}: {len(segs)} segments"],
                   n_customers=len(summary), base_rate=_base_rate(summary), segment_by=segment_by,
                   segments=segs)


def fit_gamma_gamma(summary: pd.DataFrame, penalizers=DEFAULT_PENALIZERS, *,
                    min_repeat_buyers: int = MIN_REPEAT_BUYERS) -> SpendFit:
    """Gamma-Gamma on repeat buyers with positive monetary_value; documented back-offs otherwise."""
    check_summary(summary)
    f, m = summary["frequency"].to_numpy(float), summary["monetary_value"].to_numpy(float)
    ok, notes = (f > 0) & (m > 0), []
    if ((f > 0) & ~ok).any():
        notes.append(f"{int(((f > 0) & ~ok).sum())} repeat buyer(s) with monetary_value <= 0 left out "
                     "of the fit (Gamma-Gamma needs positive spend): they get the population mean")
    if ok.sum() >= min_repeat_buyers:
        gg, pen, _ = _ladder(penalizers, lambda p: _fit_gg(f[ok], m[ok], p), notes)
        if gg is not None:
            p, q, v = (float(gg.params_[k]) for k in "pqv")
            notes.append(f"converged with penalizer {pen} on {int(ok.sum())} repeat buyers")
            return SpendFit({"p": p, "q": q, "v": v}, p * v / (q - 1), False, pen, int(ok.sum()), notes, gg)
        notes.append("Gamma-Gamma did not converge with any penalizer")
    else:
        notes.append(f"{int(ok.sum())} repeat buyer(s) with positive spend < "
                     f"min_repeat_buyers={min_repeat_buyers}: Gamma-Gamma not fitted")
    source = "mean_order_value" if "mean_order_value" in summary.columns else "monetary_value"
    values = summary[source].to_numpy(float)
    values = values[np.isfinite(values) & (values > 0)]
    mean = float(values.mean()) if len(values) else 0.0
    notes.append(f"fallback: flat expected spend {mean:.4g} = mean of positive {source}"
                 f"{'' if len(values) else ' (none positive: 0)'}")
    return SpendFit({}, mean, True, None, 0, notes)


def _patterns(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each row's combination of values, index of the first row of each code): column
    by column, so every intermediate key stays below rows**2 (a MultiIndex factorize of the
    same columns takes about 0.7 s per million rows; this about 0.1 s)."""
    codes = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        c, uniques = pd.factorize(column, use_na_sentinel=False)
        codes, _ = pd.factorize(codes * len(uniques) + c)
    first = np.empty(codes.max() + 1 if len(codes) else 0, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    return codes, first


def _count_forecast(fit: BTYDFit, sub: pd.DataFrame, horizon: float):
    """(expected_purchases, p_alive, model) per row; historical rate where the model can't."""
    f, r, t = (sub[c].to_numpy(float) for c in _KEYS)
    rate, prior = fit.base_rate["rate_per_day"], fit.base_rate["prior_days"]
    with np.errstate(all="ignore"):
        n = np.where(t + prior > 0, (f + rate * prior) / (t + prior), rate) * horizon
    p_alive, source = np.ones(len(f)), np.full(len(f), FALLBACK, dtype=object)
    if fit.fitter is not None and len(f):
        codes, first = _patterns(f, r, t)  # forecast each (frequency, recency, T) once
        uf, ur, ut = f[first], r[first], t[first]
        expected = fit.fitter.conditional_expected_number_of_purchases_up_to_time
        with _quiet():
            un = np.asarray(expected(horizon, uf, ur, ut))
            up = np.asarray(fit.fitter.conditional_probability_alive(uf, ur, ut))
        good = (np.isfinite(un) & np.isfinite(up))[codes]
        n[good], p_alive[good], source[good] = un[codes][good], up[codes][good], fit.model
    return np.maximum(n, 0.0), np.clip(p_alive, 0.0, 1.0), source


def predict(fit: BTYDFit, spend_fit: SpendFit, summary: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
    """Per customer: expected_purchases in [D + 1 day, D + 1 day + horizon_days), p_alive,
    expected_spend, predicted_value = expected_purchases * expected_spend, and model (the count
    model, or "historical_rate" where the fit failed or its forecast was not finite). All finite
    and >= 0. The fits' back-offs are in fit.notes and spend_fit.notes; a frame carries no
    attrs (pandas deep-copies them into every Series and result taken from it)."""
    check_summary(summary)
    if not np.isfinite(horizon_days) or horizon_days < 0:
        raise ValueError(f"horizon_days must be a finite number >= 0, got {horizon_days!r}")
    everyone, horizon = np.ones(len(summary), dtype=bool), float(horizon_days)
    parts = [(fit, everyone)]
    if fit.segments:  # customers of a segment unseen at fit time keep the pooled historical rate
        keys = summary[fit.segment_by].to_numpy()
        base = BTYDFit(FALLBACK, {}, None, False, True, [], base_rate=fit.base_rate)
        parts = [(base, everyone)] + [(seg, keys == k) for k, seg in fit.segments.items()]
    n, p_alive, source = _count_forecast(parts[0][0], summary, horizon)
    for part, mask in parts[1:]:
        n[mask], p_alive[mask], source[mask] = _count_forecast(part, summary[mask], horizon)
    spend = spend_fit.expected_spend(summary)
    return pd.DataFrame({"user_id": summary["user_id"].to_numpy(), "expected_purchases": n,
                         "p_alive": p_alive, "expected_spend": spend, "predicted_value": n * spend,
                         "model": source})
