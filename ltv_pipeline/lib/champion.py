"""Champion selection over a backtest and the promotion gate (pure: no Dagster, no I/O).

The selection rule (select_champion), over the tidy backtest table (model, origin, metric, value):
  1. Candidates: every model with a registry name (not the historical_rate baseline) that is
     present at the latest origin. They are compared on the origins they ALL share, so no
     candidate wins by skipping a hard origin.
  2. Guard rails on calibration, mean over those origins: total predicted / actual within
     [0.8, 1.25] and decile calibration error <= 0.5. The total ratio fails only when it lies
     outside the range by more than rail_z (2) standard errors of it over the backtest's
     bootstrap replicates (lib/backtest.py's ratio_bootstrap): on a few hundred customers a
     handful of big buyers moves an origin's realised total by 20-30%, and a rail read without
     that noise excluded every BTYD model and left a blend that realised 1.7x the total. A
     candidate that beats every lifetimes baseline on BOTH primary and tiebreak (step 3) has
     the wider total-ratio rail [2/3, 1.5]: an MAE-leaning forecast (lib/stack.py's value map)
     sits below the mean on purpose, and where the baselines themselves run at 0.8-0.9 x
     realised it would otherwise lose to a baseline it beats on both metrics. Failing candidates are excluded unless none
     pass (then all stay in, and the reason says so).
  3. Dominance over the lifetimes baselines (Rule.baselines, bgnbd_gg and pareto_gg): when
     some candidates in the pool beat every baseline on BOTH primary (higher) and tiebreak
     (lower) metric, the pool is narrowed to them; otherwise it stays as it is and the reason
     says that no candidate dominates. A model that ranks better but errs more per customer
     does not displace one that is better on both.
  4. Primary metric: normalized Gini (a data team targets customers by value rank). A candidate
     whose mean Gini is short of the best's by no more than the noise of that comparison ties
     with it; ties go to the lowest MAE, so between rankings the backtest cannot tell apart the
     one with the smaller per-customer error wins. The noise: tie_z (2) standard errors of the
     shortfall over the backtest's paired bootstrap replicates (lib/backtest.py's
     gini_bootstrap: every model on the same resampled customers at each shared origin), capped
     at tie_tolerance (0.01). On a few thousand customers a shortfall of 0.005 can be noise,
     on a million 0.001 is not; a fixed tolerance is wrong for one of them. A shortfall up to
     tie_floor (0.001) always ties: two candidates built on the same BTYD forecasts (a BTYD
     model and rfm_stack, say) are so correlated that their bootstrap difference has a standard
     error of 0.0002; on a Pareto/NBD log a backtest edge of 0.0006 then outranked a 5% lower
     MAE, and realised at D the two ranked the other way round (README). Without replicates
     (or for a primary metric other than gini) every candidate within tie_tolerance ties.
With no origin at all, the default rule picks `default` (bgnbd_gg: the reference BTYD model,
always fitted) and says so.

The promotion gate (promote): a challenger replaces the current champion only if it is not
worse beyond `tolerance` (relative) on either Gini or MAE, measured on the same backtest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NOT_SELECTABLE = ("historical_rate",)


@dataclass(frozen=True)
class Rule:
    primary: str = "gini"
    tiebreak: str = "mae"
    total_ratio_range: tuple[float, float] = (0.8, 1.25)
    dominant_total_ratio_range: tuple[float, float] = (2 / 3, 1.5)
    max_decile_calibration_error: float = 0.5
    tie_tolerance: float = 0.01  # the cap of the bootstrap tie; the tie without replicates
    tie_z: float = 2.0
    tie_floor: float = 0.001  # a Gini shortfall up to this always ties (step 4)
    rail_z: float = 2.0  # the total-ratio rail allows this many bootstrap standard errors
    default: str = "bgnbd_gg"
    baselines: tuple[str, ...] = ("bgnbd_gg", "pareto_gg")


@dataclass
class Selection:
    champion: str
    reason: str
    default_rule: bool
    origins: list[str]
    table: pd.DataFrame  # per candidate: means over the shared origins, passes_guard_rails, why
    metrics: dict[str, float] = field(default_factory=dict)  # the champion's means


def guard_rail_failures(row: pd.Series, rule: Rule, dominant: bool = False,
                        ratio_se: float = 0.0) -> list[str]:
    """Why the candidate's mean metrics fail the guard rails ([] when they pass). ratio_se: the
    standard error of its total ratio; the range is widened by rule.rail_z of them."""
    lo, hi = rule.dominant_total_ratio_range if dominant else rule.total_ratio_range
    slack = rule.rail_z * ratio_se if ratio_se and np.isfinite(ratio_se) else 0.0
    why = []
    ratio = row.get("total_ratio")
    if ratio is None or pd.isna(ratio) or not lo - slack <= ratio <= hi + slack:
        noise = f" by more than {rule.rail_z:g} standard errors ({ratio_se:.2g})" if slack else ""
        why.append(f"total_ratio {ratio:.3g} outside [{lo}, {hi}]{noise}" if pd.notna(ratio)
                   else "total_ratio undefined")
    dce = row.get("decile_calibration_error")
    if dce is None or pd.isna(dce) or dce > rule.max_decile_calibration_error:
        why.append(f"decile_calibration_error {dce:.3g} > {rule.max_decile_calibration_error}"
                   if pd.notna(dce) else "decile_calibration_error undefined")
    return why


def select_champion(table: pd.DataFrame, rule: Rule = Rule(),
                    bootstrap: dict[str, dict[str, list[float | None]]] | None = None,
                    ratio_bootstrap: dict[str, dict[str, list[float | None]]] | None = None) -> Selection:
    """The champion of a backtest by the rule in the module docstring. bootstrap: origin ->
    model -> Gini on each paired replicate (BacktestResult.gini_bootstrap); ratio_bootstrap:
    the same for the total ratio (BacktestResult.ratio_bootstrap)."""
    table = table[~table["model"].isin(NOT_SELECTABLE)]
    if table.empty:
        return Selection(rule.default, f"no backtest origin could be evaluated: default rule "
                         f"picks {rule.default}", True, [], pd.DataFrame())
    latest = max(table["origin"])
    models = sorted(table.loc[table["origin"] == latest, "model"].unique())
    sets = [set(table.loc[table["model"] == m, "origin"]) for m in models]
    origins = sorted(set.intersection(*sets))
    sub = table[table["model"].isin(models) & table["origin"].isin(origins)]
    means = sub.pivot_table(index="model", columns="metric", values="value", aggfunc="mean")
    for col in (rule.primary, rule.tiebreak, "total_ratio", "decile_calibration_error"):
        if col not in means:
            means[col] = float("nan")
    dom = _dominates(means, rule)
    means["total_ratio_se"] = [replicate_se(ratio_bootstrap, origins, m) for m in means.index]
    means["why_excluded"] = ["; ".join(guard_rail_failures(r, rule, bool(dom.get(m, False)),
                                                           r["total_ratio_se"]))
                             for m, r in means.iterrows()]
    means["passes_guard_rails"] = means["why_excluded"] == ""
    pool = means[means["passes_guard_rails"]]
    rails = "passes the guard rails"
    if pool.empty:
        pool, rails = means, "no candidate passes the guard rails, so all were ranked"
    pool = pool[pool[rule.primary].notna()]
    pool, rails = _dominant(pool, dom, means, rule, rails)
    if pool.empty:
        return Selection(rule.default, f"{rule.primary} undefined for every candidate: default "
                         f"rule picks {rule.default}", True, origins, means.reset_index())
    best = pool[rule.primary].idxmax()
    tol, how = tie_tolerances(pool, best, origins, rule, bootstrap)
    means["tie_tolerance"] = tol.reindex(means.index)
    ties = pool[pool[rule.primary] >= pool.loc[best, rule.primary] - tol]
    champ = ties[rule.tiebreak].idxmin() if ties[rule.tiebreak].notna().any() else ties[rule.primary].idxmax()
    row = means.loc[champ]
    reason = (f"{champ}: {_ranking(pool, ties, best, champ, tol, rule)} over {len(origins)} shared "
              f"origin(s) {origins} (ties: {how}); {rails}")
    numbers = {k: float(v) for k, v in row.items() if k not in ("why_excluded", "passes_guard_rails")
               and pd.notna(v)}
    return Selection(champ, reason, False, origins, means.reset_index(), numbers)


def replicate_se(reps: dict[str, dict[str, list[float | None]]] | None, origins: list[str],
                 model: str) -> float:
    """Standard error of the model's statistic averaged over the origins, from its bootstrap
    replicates at each (NaN unless every origin has them)."""
    if not reps or not origins or not all(model in reps.get(o, {}) for o in origins):
        return float("nan")
    mean = _mean_over_origins(reps, origins, model)
    return float(np.nanstd(mean, ddof=1)) if np.isfinite(mean).sum() > 1 else float("nan")


def _mean_over_origins(reps: dict[str, dict[str, list[float | None]]], origins: list[str],
                       model: str) -> np.ndarray:
    """The model's replicates averaged over the origins, replicate by replicate."""
    return np.mean([np.asarray(reps[o][model], dtype=float) for o in origins], axis=0)


def _ranking(pool: pd.DataFrame, ties: pd.DataFrame, best: str, champ: str, tol: pd.Series,
             rule: Rule) -> str:
    """Step 4's outcome in words: the best primary metric alone, or which tie and how broken."""
    p, t = rule.primary, rule.tiebreak
    if len(ties) == 1:
        rest = pool.drop(index=best)
        if rest.empty:
            return f"the only candidate left, mean {p} {pool.loc[best, p]:.4f}"
        second = rest[p].idxmax()
        return (f"best mean {p} {pool.loc[best, p]:.4f}, no other candidate tied (next: {second} "
                f"{rest.loc[second, p]:.4f}, short by more than its tie of {tol[second]:.4g})")
    if champ == best:
        return (f"best mean {p} {pool.loc[best, p]:.4f}, and the lowest {t} ({ties.loc[champ, t]:.4g}) "
                f"of the {len(ties)} tied")
    return (f"best mean {p} up to noise ({pool.loc[champ, p]:.4f} vs {best}'s {pool.loc[best, p]:.4f}; "
            f"{len(ties)} tied, broken by the lowest {t}: {ties.loc[champ, t]:.4g})")


def tie_tolerances(pool: pd.DataFrame, best: str, origins: list[str], rule: Rule,
                   bootstrap: dict[str, dict[str, list[float | None]]] | None) -> tuple[pd.Series, str]:
    """Per candidate: how far its mean primary metric may fall short of `best`'s and still tie
    (step 4), and the rule applied, in words. The bootstrap tolerance needs replicates of every
    pool candidate at every shared origin; otherwise each gets rule.tie_tolerance."""
    fixed = pd.Series(rule.tie_tolerance, index=pool.index)
    reps = bootstrap or {}
    if rule.primary != "gini" or not origins or not all(
            m in reps.get(o, {}) for o in origins for m in pool.index):
        return fixed, f"within {rule.tie_tolerance} (no bootstrap replicates for every candidate)"
    top = _mean_over_origins(reps, origins, best)
    se = pd.Series({m: np.nanstd(top - _mean_over_origins(reps, origins, m), ddof=1)
                    for m in pool.index})
    floor = min(rule.tie_floor, rule.tie_tolerance)
    tol = (rule.tie_z * se).clip(lower=floor, upper=rule.tie_tolerance).where(se.notna(),
                                                                              rule.tie_tolerance)
    tol[best] = 0.0
    return tol, (f"within {rule.tie_z:g} bootstrap standard errors of the shortfall, at least "
                 f"{floor:g} and at most {rule.tie_tolerance}")


def _dominates(means: pd.DataFrame, rule: Rule) -> pd.Series:
    """Per model: beats every baseline present on primary (higher) and tiebreak (lower)."""
    base = means.loc[[b for b in rule.baselines if b in means.index]]
    if base.empty:
        return pd.Series(False, index=means.index)
    return (means[rule.primary] > base[rule.primary].max()) & (means[rule.tiebreak] < base[rule.tiebreak].min())


def _dominant(pool: pd.DataFrame, dominates: pd.Series, means: pd.DataFrame, rule: Rule,
              rails: str) -> tuple[pd.DataFrame, str]:
    """The pool narrowed to the candidates that beat every baseline (_dominates), if any."""
    base = means.loc[[b for b in rule.baselines if b in means.index]]
    if base.empty or pool.empty:
        return pool, rails
    dom = pool[dominates.reindex(pool.index, fill_value=False)]
    if len(dom):
        return dom, (f"{rails}; {len(dom)} candidate(s) beat every baseline {list(base.index)} on "
                     f"{rule.primary} and {rule.tiebreak}: chosen among them")
    return pool, f"{rails}; no candidate beats every baseline {list(base.index)} on both " \
                 f"{rule.primary} and {rule.tiebreak}"


@dataclass
class Decision:
    promote: bool
    reason: str
    numbers: dict[str, dict[str, float]]


def promote(current_metrics: dict[str, float] | None, challenger_metrics: dict[str, float],
            tolerance: float = 0.02) -> Decision:
    """Promote unless the challenger is worse than the current champion beyond tolerance:
    gini < current gini - tolerance * |current gini|, or mae > current mae * (1 + tolerance)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if not current_metrics:
        return Decision(True, "no current champion: the challenger is promoted", {})
    numbers, worse = {}, []
    for metric, higher_better in (("gini", True), ("mae", False)):
        cur, new = current_metrics.get(metric), challenger_metrics.get(metric)
        if cur is None or new is None:
            raise ValueError(f"promotion gate needs {metric} for both models; current has "
                             f"{sorted(current_metrics)}, challenger {sorted(challenger_metrics)}")
        bound = cur - tolerance * abs(cur) if higher_better else cur + tolerance * abs(cur)
        numbers[metric] = {"current": cur, "challenger": new, "bound": bound}
        if (new < bound) if higher_better else (new > bound):
            worse.append(f"{metric} {new:.4g} {'<' if higher_better else '>'} bound {bound:.4g} "
                         f"(current {cur:.4g}, tolerance {tolerance:.0%})")
    if worse:
        return Decision(False, "refused: challenger worse than the current champion: " + "; ".join(worse),
                        numbers)
    return Decision(True, f"promoted: not worse than the current champion beyond {tolerance:.0%} "
                    "on gini and mae", numbers)
