"""Accuracy of the champion candidate rfm_stack against lifetimes' BTYD baselines.

For each (LTV_HOME, cutoff D, horizon H) case: the day table dbt built in that LTV_HOME
(intermediate.int_user_days_aggregated: every row; the models read only days <= D), then
  - bgnbd_gg, pareto_gg: BG/NBD and Pareto/NBD with Gamma-Gamma fitted on the summary at D;
  - rfm_stack: lib/stack.train_stack(days, D, H) (trained only on days <= D);
scored on every customer with a purchase by D against the realised net revenue in (D, D + H].
Prints one row per case and model: MAE, normalized Gini, total ratio, p10-p90 coverage, and
whether rfm_stack beats both baselines on MAE and Gini.

  LTV_HOME=... is not needed: pass homes on the command line, e.g.
  .venv/bin/python -m bench.accuracy cdnow=/tmp/acc-home/p1:1997-09-30:273,1998-03-31:90
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


def main(argv: list[str]) -> int:
    table = []
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
        champ = g.loc[stack.NAME]
        wins.append({"data": data, "cutoff": cutoff, "H": h,
                     "beats_on_mae": bool(champ["mae"] < base["mae"].min()),
                     "beats_on_gini": bool(champ["gini"] > base["gini"].max())})
    print(frame.to_markdown(index=False, floatfmt=".4f"))
    print()
    print(pd.DataFrame(wins).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
