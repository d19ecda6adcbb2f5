"""Accuracy of the champion candidate rfm_stack against lifetimes' BTYD baselines.

For each (LTV_HOME, cutoff D, horizon H) case: the day table dbt built in that LTV_HOME
(intermediate.int_user_days_aggregated: every row; the models read only days <= D), then
  - bgnbd_gg, pareto_gg: BG/NBD and Pareto/NBD with Gamma-Gamma fitted on the summary at D;
  - rfm_stack: lib/stack.train_stack(days, D, H) (trained only on days <= D);
scored on every customer with a purchase by D against the realised net revenue in (D, D + H].
Prints one row per case and model: MAE, normalized Gini, total ratio, p10-p90 coverage, and
whether rfm_stack beats both baselines on MAE and Gini.

  .venv/bin/python -m bench.accuracy cdnow=/tmp/acc-home/p1:1997-09-30:273,1998-03-31:90
(LTV_HOME of any run that built the day table: the models read only days <= D.)

With --predict LABEL=HOME:D:H:OUT (repeatable), it evaluates what `ltv predict` wrote instead:
OUT's predicted_value (the champion) against bgnbd_gg and pareto_gg as registered in HOME's
model registry for D, on the customers with a purchase by D, realised value from HOME's day
table, e.g. after
  LTV_HOME=H ltv predict --transactions cdnow.csv --cutoff 1998-03-31 --horizon-days 90 --out OUT
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd

from ltv_pipeline.lib import metrics, stack, warehouse

BASELINES = ("bgnbd_gg", "pareto_gg")


def load_days(home: str) -> pd.DataFrame:
    with warehouse.connect(Path(home) / "warehouse.duckdb", read_only=True) as con:
        return stack.read_days(con, date(9999, 12, 31))


def case(days: pd.DataFrame, cutoff: date, horizon: int) -> list[dict]:
    summary = stack.summary_at(days, cutoff)
    actual = stack.labels_at(days, cutoff, horizon, summary["user_id"])
    preds = {name: fit.predict(summary, horizon)["predicted_value"].to_numpy()
             for name, fit in stack.fit_btyd(summary, cutoff).items()}
    t0 = time.perf_counter()
    model = stack.train_stack(days, cutoff, horizon)
    out = model.predict(summary, horizon)
    preds[stack.NAME] = out["predicted_value"].to_numpy()
    seconds = time.perf_counter() - t0
    rows = []
    for name, p in preds.items():
        row = {"model": name, "mae": metrics.mae(actual, p), "gini": metrics.normalized_gini(actual, p),
               "total_ratio": metrics.total_ratio(actual, p),
               "decile_cal": metrics.decile_calibration_error(actual, p)}
        if name == stack.NAME:
            row["coverage"] = metrics.interval_coverage(actual, out["p10"], out["p90"])
            row["note"] = f"h={model.train_horizon_days} gamma={model.gamma} {seconds:.0f}s"
        rows.append(row)
    return rows


def from_predict(home: str, cutoff: date, horizon: int, out: str) -> list[dict]:
    from ltv_pipeline.lib.registry import ModelRegistry

    days = load_days(home)
    summary = stack.summary_at(days, cutoff)
    actual = stack.labels_at(days, cutoff, horizon, summary["user_id"])
    scores = pd.read_parquet(out) if out.endswith(".parquet") else pd.read_csv(out)
    scores = scores.assign(user_id=scores["user_id"].astype(str)).set_index("user_id")
    registry = ModelRegistry(Path(home) / "models")
    champ = registry.champion()
    preds = {name: registry.load(name).predict(summary, horizon)["predicted_value"].to_numpy()
             for name in BASELINES}
    preds["champion"] = scores.loc[summary["user_id"], "predicted_value"].to_numpy(float)
    rows = []
    for name, p in preds.items():
        row = {"model": name, "mae": metrics.mae(actual, p), "gini": metrics.normalized_gini(actual, p),
               "total_ratio": metrics.total_ratio(actual, p),
               "decile_cal": metrics.decile_calibration_error(actual, p)}
        if name == "champion":
            lo, hi = (scores.loc[summary["user_id"], c].to_numpy(float) for c in ("p10", "p90"))
            row["coverage"] = (metrics.interval_coverage(actual, lo, hi)
                               if pd.notna(lo).all() and pd.notna(hi).all() else float("nan"))
            row["note"] = f"ltv predict champion {champ.ref if champ else None}"
        rows.append(row)
    return rows


def main(argv: list[str]) -> int:
    table = []
    if argv and argv[0] == "--predict":
        for spec in argv[1:]:
            label, rest = spec.split("=", 1)
            home, d, h, out = rest.split(":", 3)
            for row in from_predict(home, date.fromisoformat(d), int(h), out):
                table.append({"data": label, "cutoff": d, "H": int(h), "customers": None, **row})
        argv = []
    for spec in argv:
        label, rest = spec.split("=", 1)
        home, *cases = rest.split(":", 1)[0], rest.split(":", 1)[1]
        days = load_days(home)
        for item in cases[0].split(","):
            d, h = item.split(":")
            for row in case(days, date.fromisoformat(d), int(h)):
                table.append({"data": label, "cutoff": d, "H": int(h), "customers": None, **row})
    frame = pd.DataFrame(table).drop(columns="customers")
    wins = []
    for (data, cutoff, h), g in frame.groupby(["data", "cutoff", "H"], sort=False):
        g = g.set_index("model")
        base = g.loc[list(BASELINES)]
        champ = g.loc["champion" if "champion" in g.index else stack.NAME]
        wins.append({"data": data, "cutoff": cutoff, "H": h,
                     "beats_on_mae": bool(champ["mae"] < base["mae"].min()),
                     "beats_on_gini": bool(champ["gini"] > base["gini"].max())})
    print(frame.to_markdown(index=False, floatfmt=".4f"))
    print()
    print(pd.DataFrame(wins).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
