"""Monitoring: one partition per scoring date D (ltv_pipeline.partitions). Drift of the
features and of the predicted values against the champion's training reference, the realised
error of the forecasts whose horizon matured at D, volume and freshness (lib/monitoring.py),
and the retrain decision of lib/drift.decide. The figures go to the materialization's metadata
(read by the drift sensor) and to LTV_HOME/monitoring/<D>.json."""

import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd

from ltv_pipeline import groups, settings
from ltv_pipeline.defs.resources import ModelRegistryResource, WarehouseResource
from ltv_pipeline.defs.scoring.assets import ltv_scores
from ltv_pipeline.lib import drift, plots
from ltv_pipeline.lib import monitoring as monitoring_lib
from ltv_pipeline.partitions import daily_partitions

FIGURES_KEY = "figures"  # metadata entry holding the whole figures dict (the sensor reads it)


def monitoring_dir(ltv_home: str) -> Path:
    return Path(ltv_home) / "monitoring"


def write_figures(ltv_home: str, figures: dict) -> Path:
    """LTV_HOME/monitoring/<D>.json, replaced atomically."""
    path = monitoring_dir(ltv_home) / f"{figures['as_of']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(figures, indent=2))
    os.replace(tmp, path)
    return path


def _error_over_time(ltv_home: str) -> pd.DataFrame:
    """Realised error of every monitoring partition written so far (the UI's error-over-time)."""
    rows = []
    for path in sorted(monitoring_dir(ltv_home).glob("*.json")):
        err = json.loads(path.read_text()).get("realised_error") or {}
        if err.get("available"):
            rows.append({"as_of": path.stem, "forecast_date": err["forecast_date"], "mae": err["mae"],
                         "gini": err["gini"], "total_ratio": err["total_ratio"], "users": err["n_users"]})
    return pd.DataFrame(rows, columns=["as_of", "forecast_date", "mae", "gini", "total_ratio", "users"])


@dg.asset(
    partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=groups.MONITORING, kinds={"duckdb"}, deps=[ltv_scores],
)
def monitoring(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
               model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    """One record per scoring date D: PSI and KS of each monitored feature and PSI of the
    predicted values against the champion's training scoring date, realised MAE, Gini and total
    ratio of the forecasts made H days before D, volume and freshness, and the retrain decision
    (lib/drift.decide) with its reasons. Also written to LTV_HOME/monitoring/<D>.json."""
    record = model_registry.get().champion_record() or {}
    figures = {}
    for day in sorted(context.partition_keys):
        with warehouse_db.connect(read_only=True) as con:
            try:
                figs = monitoring_lib.figures(con, day, record.get("metrics"), record.get("ref"),
                                          settings.DRIFT_PSI_BINS)
            except ValueError as exc:
                raise dg.Failure(f"monitoring {day}: {exc}") from exc
        decision = drift.decide(figs, settings.drift_thresholds())
        figures[day] = {**figs, **decision.as_dict()}
        path = write_figures(warehouse_db.ltv_home, figures[day])
        context.log.info(f"{day}: retrain {decision.retrain}; {'; '.join(decision.reasons) or 'no trigger'}")
    figs = figures[max(figures)]
    table = monitoring_lib.feature_table(figs)
    history = _error_over_time(warehouse_db.ltv_home)
    err, pred = figs["realised_error"], figs["predictions"]
    return dg.MaterializeResult(metadata={
        "retrain": figs["retrain"],
        "reasons": dg.MetadataValue.json(figs["reasons"]),
        "reference_date": figs["reference_date"],
        "feature_drift": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".4g")),
        **({"max_feature_psi": float(table["psi"].max())} if len(table) else {}),
        "unobserved_features": dg.MetadataValue.json(figs.get("unobserved_features", [])),
        "prediction_psi": pred["psi"] if pred.get("available") else dg.MetadataValue.text(pred["note"]),
        "realised_error": dg.MetadataValue.json(err),
        "realised_error_over_time": dg.MetadataValue.md(
            history.to_markdown(index=False, floatfmt=".4g") if len(history) else "no matured forecasts yet"),
        **({"realised_error_plot": dg.MetadataValue.md(plots.lines(
            history, "as_of", ["gini", "total_ratio"], "realised error of matured forecasts", "value"))}
           if len(history) > 1 else {}),
        "volume": dg.MetadataValue.json(figs["volume"]),
        "freshness": dg.MetadataValue.json(figs["freshness"]),
        **({"feature_psi_plot": dg.MetadataValue.md(plots.barh(
            table.set_index("feature")["psi"].sort_values(), f"PSI per feature, {figs['as_of']} vs "
            f"{figs['reference_date']}", "PSI"))} if len(table) else {}),
        "path": dg.MetadataValue.path(str(path)),
        FIGURES_KEY: dg.MetadataValue.json(figs),
    })
