"""rfm_stack: LightGBM on RFM + BTYD outputs, trained inside the history it is given, with a
value map that trades per-customer error against calibration (pure: no Dagster, no I/O).

Why it exists: the Feast LightGBM members need per-cutoff marts whose label windows end by the
scoring date, which short histories (CDNOW's classic split: 273 days of history, H = 273) do not
have; and their mean forecasts rank well but carry a larger MAE than BTYD. rfm_stack works from
the day table alone (dbt's int_user_days_aggregated: one row per user per active day, net
revenue), so it trains whenever the history holds a few internal cutoffs.

The method, for a model as of date A (history: days <= A) and horizon H:
  1. Training horizon h (choose_horizon): H when n_cutoffs internal cutoffs fit at H, else the
     longest horizon (>= MIN_HORIZON_DAYS) that fits them. Internal cutoffs c_j = A - h - j *
     step_days (j = 0 .. max_cutoffs - 1, those with >= min_history_days of data before
     them: more rows where the history allows), so every label window (c, c + h] ends by A:
     nothing at or after A + 1 day is read.
  2. Rows per cutoff: the BTYD summary at c (lifetimes definitions) with net revenue to date
     (first purchase included, which BTYD leaves out), BG/NBD and Pareto/NBD with
     Gamma-Gamma fitted at c on that summary only, and their outputs at horizon h as features
     (FEATURES). Label: net revenue in (c, c + h].
  3. LightGBM tweedie boosters (n_bags seeds, raw scores averaged) boosted FROM the BTYD forecast: its init score is
     log(base), base = the mean of BG/NBD's and Pareto/NBD's value at h, so the trees learn a
     multiplicative correction of BTYD (bounded where scoring leaves the training range, e.g.
     older customers than any seen in training, where BTYD's dropout structure carries on).
     The newest cutoff is the early-stopping set (never a training row). With three cutoffs
     or more the boosters must earn their place first: trained one cutoff earlier (early
     stopping on the second newest), they must rank the newest cutoff better (normalized
     Gini) than the BTYD base alone by more than BOOSTER_Z (2) paired-bootstrap standard
     errors, and with four cutoffs or more, trained one cutoff earlier still, the second
     newest too, else the forecast is the base alone (where the data follow BTYD closely the
     corrections fit noise: on synthetic logs the booster lowered held-out Gini by up to
     0.014 while early stopping, judged on its own cutoff, kept it; boosters kept on gains
     of at most 1.2 standard errors cost 0.005-0.007 of held-out Gini on three BTYD-like logs;
     on CDNOW 1998-03-31 the gain passes the bar, at 1997-12-31 (+0.0036 held out) it does
     not).
     gbm.train_family's quantile_p10 / quantile_p90 members give the interval.
  4. Value map v = k * s^gamma (s: the booster's forecast), its shape and level fitted on the
     newest cutoff (out of sample for the trees: early stopping only). Level: the mapped total
     is `level` x the BTYD base's total forecast (step 3's base) over the customers scored,
     level in LEVELS, and k is fixed at training from the customers with history at as_of (so
     scoring one customer or all gives the same value). The booster's own level drifts out of
     time (seasons, an ageing cohort: it learned the level of older cutoffs); BTYD's level,
     refitted at as_of, carries the population's decay. Shape: gamma in GAMMAS. (gamma, level)
     is the lowest-MAE pair on the newest cutoff whose decile calibration error <= MAX_MAP_DCE
     and whose implied total ratio, level x (BTYD base total / realised total) averaged over
     ALL internal cutoffs (one window's season does not decide), lies in RATIO_BAND (the
     champion's guard rail); when no level keeps it there, the least shrinking (largest) level
     with its best gamma. Both lean towards MAE on purpose: the MAE-optimal forecast of a
     zero-inflated, skewed value lies below its mean (gamma > 1 moves value from unlikely
     buyers, where it is near 0, to likely ones; level < 1 shrinks). A monotone map, so the
     ranking (normalized Gini) is the booster's.
  5. At scoring, BTYD refitted at A gives the features (revenue to date: the summary's column,
     or the model's snapshot at A when lib/scoring.py passes the marts' summary at A); when h < H the forecast is scaled per
     customer by BG/NBD's E[X(H)] / E[X(h)] at A (documented scaling rule, not a label at H).
p10/p90 come from the quantile members, scaled the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from ltv_pipeline.lib import gbm, metrics
from ltv_pipeline.lib.day_table import (DAY_COLUMNS, history, labels_at,  # noqa: F401 (API)
                                        normalise_days, read_days, summary_at, training_users)
from ltv_pipeline.lib.lazy import lazy

lgb = lazy("lightgbm")  # imported on the first fit (lib/lazy.py)

NAME = "rfm_stack"
COUNT_MODELS = ("bgnbd", "pareto")
FEATURES = ["frequency", "recency", "T", "monetary_value", "gap_days", "rate_per_day",
            "revenue_total", "first_value", "value_per_day",
            "bg_p_alive", "bg_expected_purchases", "pa_p_alive", "pa_expected_purchases",
            "gg_expected_spend", "bg_value", "pa_value"]
GAMMAS = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0)
MAX_MAP_DCE = 0.35  # decile calibration error a value map may reach on its fitting cutoff
LEVELS = (0.85, 0.9, 0.95, 1.0)  # mapped total / the anchor's (BTYD base) total
RATIO_BAND = (0.8, 1.25)  # mapped total / realised on the fitting cutoff (= champion.Rule's rail)
MIN_HORIZON_DAYS = 28
BOOSTER_Z = 2.0  # the booster's Gini gain over the base must exceed this many standard errors


class StackUnavailable(ValueError):
    """The history is too short to train rfm_stack; the message says what is missing."""


@dataclass(frozen=True)
class StackConfig:
    n_cutoffs: int = 3
    max_cutoffs: int = 6  # more when they fit at the full horizon (more rows, less noise)
    n_bags: int = 1  # boosters averaged (seeds); 3 measured no better on synthetic 2025-09-30
    step_days: int = 30
    min_history_days: int = 30
    max_rows: int = gbm.MAX_ROWS
    seed: int = 0


def choose_horizon(as_of: date, horizon_days: int, data_start: date, cfg: StackConfig) -> int:
    """H when cfg.n_cutoffs internal cutoffs fit at H, else the longest horizon that fits them
    (>= MIN_HORIZON_DAYS); raises StackUnavailable when none does."""
    room = (as_of - data_start).days - cfg.min_history_days - (cfg.n_cutoffs - 1) * cfg.step_days
    h = min(horizon_days, room)
    if h < min(MIN_HORIZON_DAYS, horizon_days):
        raise StackUnavailable(
            f"{NAME}: {(as_of - data_start).days} day(s) of history before {as_of} cannot hold "
            f"{cfg.n_cutoffs} training cutoffs {cfg.step_days} days apart with "
            f"{cfg.min_history_days} days of history each and a label window of at least "
            f"{min(MIN_HORIZON_DAYS, horizon_days)} days")
    return int(h)


def fit_btyd(summary: pd.DataFrame, cutoff: date) -> dict[str, object]:
    from ltv_pipeline.lib import training

    return training.fit_btyd_models(summary, cutoff, models=COUNT_MODELS)


def features(summary: pd.DataFrame, fits: dict[str, object], horizon_days: int) -> pd.DataFrame:
    """FEATURES per summary row (same order), from the summary (with revenue_total: net revenue
    to date, which carries the first purchase's value that the BTYD summary leaves out) and
    the given BTYD fits."""
    if "revenue_total" not in summary.columns:
        raise ValueError("rfm_stack features need the summary's revenue_total column "
                         "(stack.summary_at adds it)")
    bg = fits["bgnbd_gg"].predict(summary, horizon_days)
    pa = fits["pareto_gg"].predict(summary, horizon_days)
    f, r, t = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    m, rev = summary["monetary_value"].to_numpy(float), summary["revenue_total"].to_numpy(float)
    return pd.DataFrame({
        "user_id": summary["user_id"].astype(str).to_numpy(),
        "frequency": f, "recency": r, "T": t,
        "monetary_value": summary["monetary_value"].to_numpy(float), "gap_days": t - r,
        "rate_per_day": f / (t + 1.0),
        "revenue_total": rev, "first_value": np.maximum(rev - f * m, 0.0),
        "value_per_day": rev / np.maximum(t + 1.0, 30.0),
        "bg_p_alive": bg["p_alive"].to_numpy(), "bg_expected_purchases": bg["expected_purchases"].to_numpy(),
        "pa_p_alive": pa["p_alive"].to_numpy(), "pa_expected_purchases": pa["expected_purchases"].to_numpy(),
        "gg_expected_spend": bg["expected_spend"].to_numpy(),
        "bg_value": bg["predicted_value"].to_numpy(), "pa_value": pa["predicted_value"].to_numpy(),
    })


def map_k(powered: np.ndarray, level: float, total: float) -> float:
    """k of the value map v = k * powered (powered = score^gamma, computed once by the caller)
    whose total is level x total; 1 when powered sums to 0."""
    mass = float(np.sum(powered))
    return level * float(total) / mass if mass > 0 else 1.0


def fit_value_map(actual: np.ndarray, score: np.ndarray, anchor: np.ndarray | None = None,
                  levels: tuple[float, ...] = (1.0,),
                  anchor_ratio: float | None = None) -> tuple[float, float, float, list[str]]:
    """(gamma, level, k) of v = k * score^gamma with k = level * anchor total / total of
    score^gamma (anchor: the forecasts themselves when None, i.e. their own total is kept):
    the lowest MAE over GAMMAS x levels with decile calibration error <= MAX_MAP_DCE and
    level x anchor_ratio in RATIO_BAND (anchor_ratio: the anchor's total / realised total, by
    default on these rows; module docstring, step 4); when no pair is inside
    RATIO_BAND, the best gamma at the largest level; identity (gamma 1, largest level) when no
    gamma keeps the decile calibration error within MAX_MAP_DCE."""
    score = np.clip(np.asarray(score, float), 0.0, None)
    actual = np.clip(np.asarray(actual, float), 0.0, None)
    anchor_total = float(score.sum() if anchor is None else np.clip(anchor, 0.0, None).sum())
    if actual.sum() <= 0 or score.sum() <= 0 or anchor_total <= 0:
        return 1.0, 1.0, 1.0, ["value map: no positive actuals or forecasts on the fitting "
                               "cutoff: identity"]
    top = max(levels)
    grid, rows = [], []
    deciles = metrics.prediction_deciles(score)  # every map is monotone in score: the same deciles
    ratio = anchor_total / actual.sum() if anchor_ratio is None else float(anchor_ratio)
    lo, hi = RATIO_BAND
    for g in GAMMAS:
        s = score ** g
        for lv in levels:
            k = map_k(s, lv, anchor_total)
            err = float(np.mean(np.abs(actual - k * s)))
            dce = metrics.decile_calibration_error(actual, k * s, deciles)
            band = lo <= lv * ratio <= hi
            grid.append((err, g, lv, k, dce <= MAX_MAP_DCE, band))
            rows.append(f"{g}/{lv}:{err:.4g}/{dce:.3g}{'' if band else '!'}")
    ok = [c for c in grid if c[4] and c[5]] or [c for c in grid if c[4] and c[2] == top]
    best = min(ok) if ok else (np.inf, 1.0, top, map_k(score, top, anchor_total))
    return best[1], best[2], best[3], [
        f"value map gamma {best[1]} level {best[2]} (anchor total {ratio:.3g} x realised; "
        f"on the newest cutoff gamma/level:MAE/decile error, ! = total outside RATIO_BAND: {' '.join(rows)})"]


def base_value(X: pd.DataFrame) -> np.ndarray:
    return np.maximum(0.5 * (X["bg_value"].to_numpy(float) + X["pa_value"].to_numpy(float)), 1e-6)


@dataclass
class Booster:
    """Tweedie boosters on top of log(base_value): forecast = base * exp(mean of their trees'
    raw scores). Several bags (seeds of LightGBM's row and feature sampling) average out the
    noise of one small-sample booster, which otherwise costs ranking against BTYD."""

    booster: lgb.Booster | None
    best_iteration: int
    extra: list = field(default_factory=list)  # further bags (lgb.Booster)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        base = base_value(X)
        bags = [b for b in [self.booster, *getattr(self, "extra", [])] if b is not None]
        if not bags:
            return base
        raw = np.mean([b.predict(X[FEATURES], raw_score=True) for b in bags], axis=0)
        with np.errstate(over="ignore"):
            out = base * np.exp(raw)
        return np.clip(np.nan_to_num(out, nan=0.0, posinf=np.finfo(float).max), 0.0, None)


def fit_booster(frame: pd.DataFrame, seed: int, notes: list[str], n_bags: int = 1) -> Booster:
    """Train on every cutoff but the newest, early stopping on the newest; n_bags boosters
    with seeds seed, seed + 1, ... With three cutoffs or more the boosters must first earn
    their place (module docstring, step 3): see booster_earns_its_place."""
    if not booster_earns_its_place(frame, seed, notes, n_bags):
        return Booster(None, 0)
    return _boost(frame, seed, notes, n_bags)


def booster_earns_its_place(frame: pd.DataFrame, seed: int, notes: list[str], n_bags: int = 1) -> bool:
    """False when boosters trained before a check cutoff rank it no better (normalized Gini)
    than the BTYD base alone beyond noise, at either of the two newest cutoffs: trained on every
    cutoff but the two newest (early stopping on the second newest) they are checked on the
    newest; with four cutoffs or more, trained one cutoff earlier still, also on the second
    newest. Each gain must exceed BOOSTER_Z standard errors of the paired difference over
    bootstrap replicates of that cutoff's customers (metrics.gini_bootstrap). The bootstrap
    measures the noise of one cutoff's customers, not how the gain varies from date to date:
    a gain on one cutoff that the cutoff before does not repeat is not kept (an offline screen
    of 111 log/cutoff/horizon cases: a booster that passed the newest check alone and failed
    the second ranked worse at D than the base in 9 of 12). The newest cutoff cannot judge the
    final boosters itself: early stopping chose their rounds on it, which always favours them.
    True with fewer than three cutoffs or when a trial trains no booster."""
    cuts = sorted(frame["cutoff_date"].unique())
    if len(cuts) < 3:
        return True
    n_checks = 2 if len(cuts) >= 4 else 1  # a trial needs a training and an early-stopping cutoff
    for check_cut in cuts[::-1][:n_checks]:  # the newest first
        verdict = _booster_check(frame, check_cut, seed, notes, n_bags)
        if verdict is not None:
            return verdict
    return True


def _booster_check(frame: pd.DataFrame, check_cut, seed: int, notes: list[str], n_bags: int) -> bool | None:
    """One check of booster_earns_its_place: boosters trained on the cutoffs before check_cut
    (early stopping on the newest of them) against the BTYD base on check_cut. False when the
    gain is within the noise; True when the boosters are kept untested (no trial booster, or
    Gini undefined on check_cut); None when they passed this check."""
    trial = _boost(frame[frame["cutoff_date"] < check_cut], seed, [], n_bags)
    if trial.booster is None:
        return True
    check = frame[frame["cutoff_date"] == check_cut]
    y = check["value"].clip(lower=0.0).to_numpy()
    day = pd.Timestamp(check_cut).date()
    preds = {"boosted": trial.predict(check), "base": base_value(check)}
    try:
        boosted, base = (metrics.normalized_gini(y, v) for v in preds.values())
    except metrics.UndefinedMetricError as why:
        notes.append(f"booster: normalized Gini undefined on {day} ({why}): the boosters are "
                     "kept untested")
        return True
    reps = metrics.gini_bootstrap(y, preds, seed=seed)
    se = float(np.nanstd(reps["boosted"] - reps["base"], ddof=1))
    bar = BOOSTER_Z * se if np.isfinite(se) else 0.0
    told = (f"normalized Gini {boosted:.4f} vs {base:.4f}, gain {boosted - base:+.4f}; "
            f"{BOOSTER_Z:g} paired-bootstrap standard errors = {bar:.4f}")
    if boosted - base <= bar:
        notes.append(f"booster: trained before {day} it ranks {day} no better than the "
                     f"BTYD base beyond noise ({told}): the base alone")
        return False
    notes.append(f"booster: trained before {day} it ranks {day} better than the BTYD base "
                 f"beyond noise ({told})")
    return None


def _boost(frame: pd.DataFrame, seed: int, notes: list[str], n_bags: int) -> Booster:
    newest = frame["cutoff_date"] == frame["cutoff_date"].max()
    tr, va = frame[~newest], frame[newest]
    y, yv = tr["value"].clip(lower=0.0).to_numpy(), va["value"].clip(lower=0.0).to_numpy()
    if (y > 0).sum() < 10:
        notes.append("booster: fewer than 10 positive training labels: the BTYD base alone")
        return Booster(None, 0)
    dtrain = lgb.Dataset(tr[FEATURES], y, init_score=np.log(base_value(tr)), free_raw_data=False)
    dvalid = lgb.Dataset(va[FEATURES], yv, init_score=np.log(base_value(va)), reference=dtrain)
    bags, iters = [], []
    for i in range(max(1, n_bags)):
        params = {**gbm.BASE_PARAMS, **gbm.size_params(len(tr)), "objective": "tweedie",
                  "tweedie_variance_power": 1.3, "metric": "tweedie", "seed": seed + i,
                  "learning_rate": 0.05}
        b = lgb.train(params, dtrain, num_boost_round=gbm.MAX_ROUNDS, valid_sets=[dvalid],
                      valid_names=["validation"],
                      callbacks=[lgb.early_stopping(gbm.EARLY_STOPPING_ROUNDS, verbose=False)])
        best = b.best_iteration or b.current_iteration()
        iters.append(best)
        if best > 0:
            bags.append(b)
    notes.append(f"booster: {len(bags)} bag(s) of {iters} tree(s) over the BTYD base (early "
                 "stopping on the newest cutoff)")
    return Booster(bags[0], iters[0], bags[1:]) if bags else Booster(None, 0)


@dataclass
class RFMStack:
    """The registered model: BTYD fitted at as_of, the boosters, the value map and the horizon
    rule. predict(summary, H) follows the BTYD models' interface (lib/scoring.py uses it)."""

    as_of: str
    horizon_days: int
    train_horizon_days: int
    btyd_fits: dict[str, object]
    booster: Booster
    family: dict[str, gbm.GBMModel]  # quantile_p10, quantile_p90
    gamma: float
    k: float
    training_cutoffs: list[str]
    notes: list[str] = field(default_factory=list)
    revenue_total: dict[str, float] = field(default_factory=dict)  # per user at as_of

    def with_revenue(self, summary: pd.DataFrame) -> pd.DataFrame:
        """The summary with revenue_total: its own column, else (the marts' BTYD summary at
        as_of, as lib/scoring.py passes it) this model's snapshot of revenue to date at as_of."""
        if "revenue_total" in summary.columns:
            return summary
        cut = pd.to_datetime(summary["cutoff_date"]).dt.date.astype(str) if "cutoff_date" in summary else None
        if cut is None or not (cut == self.as_of).all():
            raise ValueError(f"rfm_stack as of {self.as_of} needs revenue_total for a summary at "
                             f"{sorted(set(cut)) if cut is not None else 'an unknown date'}: add the "
                             "column (stack.summary_at) or score at its own as_of date")
        rev = summary["user_id"].astype(str).map(self.revenue_total).fillna(0.0)
        return summary.assign(revenue_total=rev.to_numpy(float))

    def predict(self, summary: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
        """user_id, predicted_value, p10, p90, p_alive, expected_purchases, expected_spend (the
        last three from BG/NBD at horizon_days) per summary row."""
        h = self.train_horizon_days
        summary = self.with_revenue(summary)
        X = features(summary, self.btyd_fits, h)
        score = self.booster.predict(X)
        value = self.k * score ** self.gamma
        bg_h = self.btyd_fits["bgnbd_gg"].predict(summary, horizon_days)
        scale = np.ones(len(X))
        if horizon_days != h:
            e_long = bg_h["expected_purchases"].to_numpy(float)
            e_short = X["bg_expected_purchases"].to_numpy(float)
            with np.errstate(all="ignore"):
                scale = np.where(e_short > 1e-12, e_long / e_short, horizon_days / h)
        q = [self.family[m].predict(X) * scale if m in self.family else np.full(len(X), np.nan)
             for m in ("quantile_p10", "quantile_p90")]
        return pd.DataFrame({
            "user_id": summary["user_id"].to_numpy(), "predicted_value": value * scale,
            "p10": np.fmin(*q), "p90": np.fmax(*q),
            "p_alive": bg_h["p_alive"].to_numpy(), "expected_purchases": bg_h["expected_purchases"].to_numpy(),
            "expected_spend": bg_h["expected_spend"].to_numpy()})

    def describe(self) -> dict[str, object]:
        return {"as_of": self.as_of, "horizon_days": self.horizon_days,
                "train_horizon_days": self.train_horizon_days, "gamma": self.gamma, "k": self.k,
                "training_cutoffs": self.training_cutoffs, "notes": self.notes}


def training_frame(days: pd.DataFrame, cutoffs: list[date], h: int,
                   cache: dict | None = None) -> pd.DataFrame:
    """Stacked FEATURES + cutoff_date + value over cutoffs. cache: cutoff ISO -> BTYD fits,
    shared between calls on the same day table (a fit at c reads days <= c only)."""
    parts, cache = [], {} if cache is None else cache
    for c in cutoffs:
        summary = summary_at(days, c)
        if summary.empty:
            continue
        if c.isoformat() not in cache:
            cache[c.isoformat()] = fit_btyd(summary, c)
        X = features(summary, cache[c.isoformat()], h)
        X["cutoff_date"] = pd.Timestamp(c)
        X["value"] = labels_at(days, c, h, summary["user_id"])
        parts.append(X)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def bound_rows(frame: pd.DataFrame, max_rows: int, seed: int, notes: list[str]) -> pd.DataFrame:
    """At most max_rows rows besides the newest cutoff (early stopping and the value map's
    fitting cutoff, kept whole): the newest training cutoffs whole, older ones sampled by a
    hash of (user_id, cutoff, seed), as gbm_fit bounds the LightGBM family's rows."""
    from ltv_pipeline.lib.gbm_fit import bound_keys

    kept, more = bound_keys(frame, max_rows, seed)
    notes.extend(more)
    return frame if kept is frame else kept.reset_index(drop=True)


def train_stack(days: pd.DataFrame, as_of: date, horizon_days: int,
                cfg: StackConfig = StackConfig(), cache: dict | None = None,
                train_users: pd.Index | None = None) -> RFMStack:
    """rfm_stack as of `as_of` (module docstring). Only day rows <= as_of are read, whatever
    the caller passes. train_users: the customers the internal cutoffs' rows come from (the
    training sample); the fit at as_of, the level k and the revenue snapshot cover everyone in
    `days`. Raises StackUnavailable when the history is too short."""
    days = history(normalise_days(days), as_of)
    if days.empty:
        raise StackUnavailable(f"{NAME}: no activity on or before {as_of}")
    start = days["activity_date"].min().date()
    h = choose_horizon(as_of, horizon_days, start, cfg)
    earliest = start + timedelta(days=cfg.min_history_days)
    cutoffs = sorted(c for c in (as_of - timedelta(days=h + j * cfg.step_days)
                                 for j in range(max(cfg.n_cutoffs, cfg.max_cutoffs))) if c >= earliest)
    sample = days if train_users is None else days[days["user_id"].isin(train_users)]
    frame = training_frame(sample, cutoffs, h, cache)
    if len(cutoffs) < 2 or len(frame) < 200:
        raise StackUnavailable(f"{NAME}: {len(cutoffs)} training cutoff(s) and {len(frame)} rows "
                               f"before {as_of} at horizon {h} (need 2 and 200)")
    notes: list[str] = []
    frame = bound_rows(frame, cfg.max_rows, cfg.seed, notes)
    booster = fit_booster(frame, cfg.seed, notes, cfg.n_bags)
    family = gbm.train_family(frame, FEATURES, [], members=["quantile_p10", "quantile_p90"],
                              max_rows=cfg.max_rows, seed=cfg.seed)
    newest = frame[frame["cutoff_date"] == frame["cutoff_date"].max()]
    by_cut = frame.assign(base=base_value(frame)).groupby("cutoff_date")[["base", "value"]].sum()
    anchor_ratio = float((by_cut["base"] / by_cut["value"].where(by_cut["value"] > 0)).mean())
    gamma, level, _, map_notes = fit_value_map(newest["value"].to_numpy(), booster.predict(newest),
                                               base_value(newest), LEVELS,
                                               anchor_ratio if np.isfinite(anchor_ratio) else None)
    notes += map_notes
    if h != horizon_days:
        notes.append(f"trained at horizon {h} days (the longest with {cfg.n_cutoffs} training "
                     f"cutoffs in the history), scaled to {horizon_days} days per customer by "
                     "BG/NBD's E[X(H)] / E[X(h)]")
    summary = summary_at(days, as_of)
    fits = fit_btyd(summary, as_of)
    X = features(summary, fits, h)
    k = map_k(booster.predict(X) ** gamma, level, float(base_value(X).sum()))
    return RFMStack(as_of.isoformat(), horizon_days, h, fits, booster, family,
                    gamma, k, [c.isoformat() for c in cutoffs], notes,
                    dict(zip(summary["user_id"].astype(str), summary["revenue_total"].astype(float))))
