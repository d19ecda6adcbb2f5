"""Per-customer forecasts with the champion (DESIGN.md output contract). No Dagster imports.

One row per user known at the cutoff (customer_features' population): user_id,
predicted_value (the champion's), p10, p90 (the LightGBM quantile members when they were
trained for this scoring date, else empty), p_alive and expected_purchases (the BG/NBD model
fitted at the cutoff; 0 purchases for users without a purchase yet), segment, model (the
champion's registry ref) and cold_start (no purchase before the cutoff + 1 day).

Segments come from lib.ranking: thresholds computed on the population's warm users, then
assigned user by user, so a single user scored later with the stored thresholds gets the same
segment as in the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ltv_pipeline.lib import ranking

SCORING_CHUNK_USERS = 250_000  # customers per forecast call in score_as_of
OUTPUT_COLUMNS = ["user_id", "predicted_value", "p10", "p90", "p_alive", "expected_purchases",
                  "segment", "model", "cold_start"]


def forecast(population: pd.DataFrame, summary: pd.DataFrame, horizon_days: int,
             models: dict[str, object], gbm_frame: Callable[[], pd.DataFrame] | None,
             champion: str, champion_ref: str,
             thresholds: dict[str, float] | None = None) -> pd.DataFrame:
    """The output contract's rows for `population` (user_id, is_cold_start).

    models: registry name -> loaded model for every candidate the champion may need
    (bgnbd_gg at least; gbm_<member>; a blend's members). gbm_frame builds the LightGBM input
    frame (features + BTYD inputs, one row per population user) when a LightGBM model is used.
    p10/p90: the champion's own interval when its predict returns one (rfm_stack), else the
    LightGBM quantile members when trained, else empty.
    """
    users = population[["user_id"]].reset_index(drop=True)
    cold = population["is_cold_start"].fillna(False).to_numpy(bool)
    frame: pd.DataFrame | None = None
    intervals: dict[str, np.ndarray] = {}  # p10/p90 the champion itself returns (rfm_stack)
    predicted: dict[str, pd.DataFrame] = {}  # each summary model's forecast, computed once

    def summary_forecast(name: str) -> pd.DataFrame:
        if name not in predicted:
            predicted[name] = models[name].predict(summary, horizon_days).set_index("user_id")
        return predicted[name]

    def values(name: str) -> np.ndarray:
        nonlocal frame
        model = models[name]
        if name.startswith("gbm_"):
            if frame is None:
                frame = gbm_frame().set_index("user_id").loc[users["user_id"]].reset_index()
            return np.asarray(model.predict(frame), dtype=float)
        if hasattr(model, "combine"):  # a blend of other candidates
            return np.asarray(model.combine({m: values(m) for m in model.weights}), dtype=float)
        if summary.empty:  # nobody with a purchase yet: summary models forecast nothing
            return np.zeros(len(users))
        pred = summary_forecast(name)
        if name == champion:
            for q in ("p10", "p90"):
                if q in pred.columns:
                    intervals[q] = users["user_id"].map(pred[q]).fillna(0.0).to_numpy(float)
        return users["user_id"].map(pred["predicted_value"]).fillna(0.0).to_numpy(float)

    def interval(q: str) -> np.ndarray | float:
        """The champion's own interval when it has one, else the LightGBM quantile member."""
        if q in intervals:
            return intervals[q]
        return values(f"gbm_quantile_{q}") if f"gbm_quantile_{q}" in models else np.nan

    value = np.clip(values(champion), 0.0, None)
    btyd = summary_forecast("bgnbd_gg")
    out = users.assign(
        predicted_value=value,
        p10=interval("p10"),
        p90=interval("p90"),
        p_alive=users["user_id"].map(btyd["p_alive"]).to_numpy(float),
        expected_purchases=users["user_id"].map(btyd["expected_purchases"]).fillna(0.0).to_numpy(float),
    )
    lo, hi = out[["p10", "p90"]].min(axis=1), out[["p10", "p90"]].max(axis=1)
    out["p10"], out["p90"] = lo.where(out["p10"].notna()), hi.where(out["p90"].notna())
    value = out["predicted_value"].to_numpy(float)
    if thresholds is None:
        thresholds = ranking.segment_thresholds(value, cold)
    out["segment"] = ranking.assign_segments(value, cold, thresholds)
    out["model"] = champion_ref
    out["cold_start"] = cold
    return out[OUTPUT_COLUMNS]


def _load_ref(registry, ref: str):
    name, version = ref.split("/v")
    return registry.load(name, int(version))


def champion_models(registry) -> tuple[object, dict[str, object]]:
    """The champion's ModelVersion and every model scoring needs: bgnbd_gg (p_alive and
    expected purchases), the champion, a blend's members, the quantile members if trained."""
    champ = registry.champion()
    if champ is None:
        raise RuntimeError("the model registry has no champion: the champion asset did not run")
    models = {"bgnbd_gg": registry.load("bgnbd_gg")}
    champion_obj = champ.load()
    models[champ.name] = champion_obj
    for ref in getattr(champion_obj, "refs", {}).values():
        models[ref.split("/v")[0]] = _load_ref(registry, ref)
    for q in ("gbm_quantile_p10", "gbm_quantile_p90"):
        if q in registry.names():
            models[q] = registry.load(q)
    return champ, models


def explainer(registry, models: dict[str, object], champion: str) -> tuple[str, object] | None:
    """The LightGBM model whose per-user contributions explain the forecast: the champion
    itself, else the blend's LightGBM member with the largest weight, else (a BTYD champion)
    the first registered LightGBM point member, labelled by its ref. None without LightGBM."""
    champion_obj = models[champion]
    if champion.startswith("gbm_"):
        return registry.version(champion).ref, champion_obj
    weights = getattr(champion_obj, "weights", {})
    members = sorted((w, m) for m, w in weights.items() if m.startswith("gbm_") and w > 0)
    if members:
        name = members[-1][1]
        return champion_obj.refs.get(name, name), models[name]
    point = [n for n in registry.names() if n.startswith("gbm_") and "quantile" not in n]
    if not point:
        return None
    version = registry.version(point[0])
    return version.ref, version.load()


def gbm_input(ltv_home, entity: pd.DataFrame, summary: pd.DataFrame, bgnbd,
              horizon_days: int) -> pd.DataFrame:
    """The LightGBM input of the entity rows' users (one cutoff): their Feast point-in-time
    features with the BTYD inputs of bgnbd on the summary (with_btyd_inputs)."""
    from pathlib import Path

    from ltv_pipeline.lib import feature_store

    feats = feature_store.training_frame(feature_store.feature_store(Path(ltv_home)), entity)
    return with_btyd_inputs(feats, summary[summary["user_id"].isin(entity["user_id"])], bgnbd,
                            horizon_days, entity["cutoff_date"].iloc[0])


def with_btyd_inputs(feats: pd.DataFrame, summary: pd.DataFrame, bgnbd, horizon_days: int,
                     cutoff) -> pd.DataFrame:
    """feats (one cutoff's features, batch or online) joined with the hybrid member's BTYD
    inputs: bgnbd's (the registry's bgnbd_gg) forecast on the summary rows."""
    from ltv_pipeline.lib import training

    pred = bgnbd.predict(summary, horizon_days)
    return training.model_frame(feats, training.hybrid_frame(pred, cutoff))


def score_as_of(ltv_home, cutoff, horizon_days: int, explain_top: int = 0,
                chunk_users: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Forecasts for everyone known at `cutoff` with the registry's champion, from the marts
    and the Feast store under ltv_home (built for this cutoff), scored chunk_users customers
    at a time (SCORING_CHUNK_USERS: a LightGBM or blend champion's feature frame and member
    forecasts for a million customers peaked at 4.3 GB in one piece; every row's forecast is
    its own, so the chunks change no value), and what was used: champion,
    models, segment_thresholds, and a top_features column with the LightGBM contributions of
    the model named in used["explained_by"] for the explain_top users of highest predicted
    value (TreeSHAP costs about a millisecond per user: the rest get null)."""
    from pathlib import Path

    from ltv_pipeline.lib import gbm, marts, warehouse
    from ltv_pipeline.lib.registry import ModelRegistry

    chunk_users = chunk_users or SCORING_CHUNK_USERS
    registry = ModelRegistry(Path(ltv_home) / "models")
    champ, models = champion_models(registry)
    with warehouse.connect(Path(ltv_home) / "warehouse.duckdb", read_only=True) as con:
        population = marts.population(con, cutoff)
        summary = marts.btyd_summary(con, [cutoff])
    if population.empty:
        raise ValueError(f"marts.customer_features has no row for cutoff {cutoff}: build that "
                         "cutoff first (the scoring_features asset of that partition)")
    cache: dict[str, pd.DataFrame] = {}

    def frame_of(entity: pd.DataFrame) -> pd.DataFrame:
        return gbm_input(ltv_home, entity, summary, models["bgnbd_gg"], horizon_days)

    parts = []
    for start in range(0, len(population), chunk_users):  # bounded memory (module constant)
        chunk = population.iloc[start:start + chunk_users].reset_index(drop=True)
        whole = len(chunk) == len(population)

        def gbm_frame(chunk=chunk, whole=whole) -> pd.DataFrame:
            frame = frame_of(chunk[["user_id", "cutoff_date"]])
            if whole:  # the explained users' features come from it too
                cache["frame"] = frame
            return frame

        rows = summary if whole else summary[summary["user_id"].isin(chunk["user_id"])]
        parts.append(forecast(chunk, rows, horizon_days, models, gbm_frame, champ.name, champ.ref))
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    thresholds = ranking.segment_thresholds(out["predicted_value"].to_numpy(float),
                                            out["cold_start"].to_numpy(bool))
    if len(parts) > 1:  # segments from the whole population's thresholds, not each chunk's
        out["segment"] = ranking.assign_segments(out["predicted_value"].to_numpy(float),
                                                 out["cold_start"].to_numpy(bool), thresholds)
    used = {"champion": champ.ref, "models": sorted(models), "horizon_days": int(horizon_days),
            "segment_thresholds": thresholds}
    out["margin_rate"] = population["margin_share"].to_numpy(float)
    out["top_features"] = None
    found = explainer(registry, models, champ.name) if explain_top > 0 else None
    used["explained_by"] = found[0] if found else None
    if found:
        top_users = out.nlargest(explain_top, "predicted_value", keep="first")
        # Only the explained users' rows: a BTYD or rfm_stack champion needs no LightGBM frame,
        # and retrieving everyone's features for the top few cost ~3 GB at 1M users.
        source = cache.get("frame")
        if source is None:
            source = frame_of(population.loc[population["user_id"].isin(top_users["user_id"]),
                                             ["user_id", "cutoff_date"]])
        frame = source.set_index("user_id").loc[top_users["user_id"]].reset_index()
        top = gbm.contributions(found[1], frame, top_k=3)
        out.loc[top_users.index, "top_features"] = top["top_features"].to_numpy()
    return out, used


def score_online(ltv_home, user_id: str, as_of=None) -> dict:
    """One user's forecast from the Feast online store and the champion, as the batch partition
    of the same date wrote it (same forecast function, the partition's stored thresholds and
    horizon): predicted_value, p10, p90, p_alive, expected_purchases, segment, model,
    cold_start, as_of_date, latency_ms (online read + model, after loading). An id the online
    store does not hold gets the partition's cold-start prior, flagged cold_start and unknown.
    Raises LookupError when the online store or the partition record is missing, and
    feature_store.StaleFeaturesError when the online row is of another date than as_of."""
    import time
    from pathlib import Path

    from ltv_pipeline.lib import feature_store, online_store, scores
    from ltv_pipeline.lib.registry import ModelRegistry

    home = Path(ltv_home)
    store = feature_store.feature_store(home)
    champ, models = champion_models(ModelRegistry(home / "models"))
    started = time.perf_counter()
    feats = online_store.online_features(store, [user_id], feature_store.LTV_MODEL_SERVICE, as_of)
    btyd = online_store.online_features(store, [user_id], feature_store.BTYD_SERVICE, as_of)
    marker = feats["feature_cutoff_date"].iloc[0]
    day = as_of or marker or scores.latest_record_date(home)  # unknown id: the latest partition
    if day is None:
        raise LookupError("no scoring partition has been written yet: score one with its "
                          "online store (`ltv score --from D --to D`)")
    record = scores.read_record(home, day)
    if record is None:
        raise LookupError(f"no scoring partition record for {day} (LTV_HOME/scores/{day}.json): "
                          f"score it first (`ltv score --from {day} --to {day}`)")
    out = {"user_id": str(user_id), "as_of_date": str(pd.Timestamp(day).date())}
    if marker is None:  # never seen at that date: the partition's prior for a new customer
        out |= {"predicted_value": record["cold_start_value"], "p10": None, "p90": None,
                "p_alive": None, "expected_purchases": 0.0, "segment": "new",
                "model": record["champion"], "cold_start": True, "known": False}
    else:
        cutoff = pd.Timestamp(marker).date()
        horizon = int(record["horizon_days"])
        population = pd.DataFrame({"user_id": [str(user_id)], "cutoff_date": [cutoff],
                                   "is_cold_start": [bool(feats["is_cold_start"].iloc[0])]})
        summary = btyd[["user_id", "frequency", "recency", "T", "monetary_value",
                        "mean_order_value"]].dropna()
        summary = summary.assign(cutoff_date=cutoff,
                                 revenue_total=feats["revenue_total"].iloc[0])  # as marts.btyd_summary

        def gbm_frame() -> pd.DataFrame:
            f = feats.drop(columns=["feature_cutoff_date"]).assign(cutoff_date=cutoff)
            return with_btyd_inputs(f, summary, models["bgnbd_gg"], horizon, cutoff)

        row = forecast(population, summary, horizon, models, gbm_frame, champ.name, champ.ref,
                       thresholds=record["segment_thresholds"]).iloc[0]
        out |= {k: (None if pd.isna(row[k]) else (bool(row[k]) if k == "cold_start" else
                    (row[k] if isinstance(row[k], str) else float(row[k]))))
                for k in OUTPUT_COLUMNS if k != "user_id"}
        out["known"] = True
    out["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    if champ.ref != record["champion"]:
        out["note"] = (f"the champion is now {champ.ref}; partition {day} was scored with "
                       f"{record['champion']}: re-score it for identical batch and online values")
    return out
