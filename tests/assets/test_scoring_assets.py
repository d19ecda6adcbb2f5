"""Daily scoring partitions on a real small pipeline: idempotent partitions, a 7-day backfill in
one run, exports, and the training plan left alone by scoring builds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ltv_pipeline import settings
from ltv_pipeline.lib import dbt_state, generator, marts, scores, warehouse

AS_OF = "2025-06-30"
AFTER_TRAINING: dict[str, str | None] = {}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Iterator[Path]:
    """A home where the full pipeline ran as of AS_OF on a 1,500-user synthetic log."""
    saved = {k: os.environ.get(k) for k in ("LTV_HOME", "DAGSTER_HOME")}
    home = tmp_path_factory.mktemp("scoring_home")
    os.environ["LTV_HOME"] = str(home)
    os.environ.pop("DAGSTER_HOME", None)
    source = tmp_path_factory.mktemp("log")
    generator.write(generator.generate(n_users=1500, seed=5), source)
    from ltv_pipeline.definitions import defs

    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("full_pipeline_job").execute_in_process(
            run_config={"ops": {
                "raw_tables": {"config": {"source": str(source)}},
                "ltv_dbt_models": {"config": {"as_of": AS_OF, "horizon_days": 90}},
            }},
            instance=instance, raise_on_error=False,
        )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    with warehouse.connect(home / "warehouse.duckdb", read_only=True) as con:
        AFTER_TRAINING["recorded"] = dbt_state.recorded(con)
        AFTER_TRAINING["inputs"] = dbt_state.fingerprint(con, settings.DBT_PROJECT_DIR,
                                                         settings.base_currency())
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def score(tags: dict[str, str]) -> dg.ExecuteInProcessResult:
    """score_job without the online store (its own tests cover it), as `ltv score --skip-online`."""
    from ltv_pipeline.definitions import defs

    selection = [dg.AssetKey(k) for k in ("scoring_features", "ltv_scores", "audience_exports")]
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("score_job").execute_in_process(
            instance=instance, tags=tags, asset_selection=selection, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def known_users(home: Path, day: str) -> int:
    """Users known before day + 1 (a transaction, an event or a signup), straight from raw."""
    end = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    with warehouse.connect(home / "warehouse.duckdb", read_only=True) as con:
        return con.execute(f"""
            select count(distinct user_id) from (
                select user_id from raw.transactions where ts < timestamp '{end}'
                union all select user_id from raw.events where ts < timestamp '{end}'
                union all select user_id from raw.users where signup_ts < timestamp '{end}')
        """).fetchone()[0]


def test_a_partition_scored_twice_keeps_one_row_per_user(trained):
    day = "2025-07-01"
    score({"dagster/partition": day})
    first = scores.read_partition(trained / "warehouse.duckdb", day)
    score({"dagster/partition": day})
    again = scores.read_partition(trained / "warehouse.duckdb", day)
    assert len(again) == len(first) == known_users(trained, day)
    assert again["user_id"].is_unique
    assert sorted(again["rank"]) == list(range(1, len(again) + 1))
    assert set(again["segment"]) <= {"high", "medium", "low", "new"}
    assert again.loc[again["cold_start"], "segment"].eq("new").all()
    # the scored values are the same model's: re-scoring is deterministic
    pd.testing.assert_series_equal(first.set_index("user_id")["predicted_value"].sort_index(),
                                   again.set_index("user_id")["predicted_value"].sort_index())
    assert scores.thresholds(trained / "warehouse.duckdb", day)["high"] > 0


def test_a_seven_day_backfill_is_one_run_with_seven_partitions(trained, monkeypatch):
    with warehouse.connect(trained / "warehouse.duckdb", read_only=True) as con:
        plan_before = marts.read_plan(con)
        users = dbt_state.known_users(con)
    # a budget of 3 dates of every user per dbt build: the 7 dates take 3 builds (3, 3, 1)
    monkeypatch.setenv("LTV_SCORING_BUILD_MAX_USER_DATES", str(3 * users + 1))
    result = score({"dagster/asset_partition_range_start": "2025-07-02",
                    "dagster/asset_partition_range_end": "2025-07-08"})
    assert features_metadata(result)["dbt_builds"] == 3
    assert dbt_state.batches([str(d) for d in range(7)], users, 3 * users + 1) == [
        ["0", "1", "2"], ["3", "4", "5"], ["6"]]
    counts = scores.partition_counts(trained / "warehouse.duckdb")
    days = [f"2025-07-0{d}" for d in range(2, 9)]
    assert {d: counts.get(d) for d in days} == {d: known_users(trained, d) for d in days}
    [mat] = [m for m in result.get_asset_materialization_events()
             if m.asset_key == dg.AssetKey("ltv_scores") and m.partition == "2025-07-08"]
    meta = {k: v.value for k, v in mat.materialization.metadata.items()}
    assert meta["customers_scored"] == counts["2025-07-08"]
    assert sum(meta["segment_sizes"].values()) == counts["2025-07-08"]
    # scoring builds keep their own plan: what training and evaluation read is unchanged
    with warehouse.connect(trained / "warehouse.duckdb", read_only=True) as con:
        assert marts.read_plan(con) == plan_before
    exports = trained / "exports" / "2025-07-08"
    for name in ("top_value", "top_margin", "churn_risk_high_value", "priority"):
        csv = pd.read_csv(exports / f"{name}.csv")
        pd.testing.assert_frame_equal(csv, pd.read_parquet(exports / f"{name}.parquet"),
                                      check_dtype=False, rtol=1e-9)
        assert 0 < len(csv) <= 1000
    top = pd.read_csv(exports / "top_value.csv")
    assert top["predicted_value"].is_monotonic_decreasing


def refusal(day: str) -> str:
    """The error of the scoring_features step of partition `day`, which must fail."""
    from ltv_pipeline.definitions import defs

    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("score_job").execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False,
            asset_selection=[dg.AssetKey("scoring_features")])
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return str(failure.event_specific_data.error)


def test_scoring_a_date_before_the_data_is_refused(trained):
    assert "before the first transaction date" in refusal("2022-12-01")


def test_scoring_in_another_base_currency_than_the_training_build_is_refused(trained, monkeypatch):
    with warehouse.connect(trained / "warehouse.duckdb", read_only=True) as con:
        assert marts.read_plan(con).base_currency == settings.base_currency() == "USD"
    monkeypatch.setenv("LTV_BASE_CURRENCY", "EUR")
    message = refusal("2025-07-20")
    assert "trained on amounts in USD" in message and "LTV_BASE_CURRENCY=USD" in message
    assert "2025-07-20" not in scores.partition_counts(trained / "warehouse.duckdb")


def test_online_scoring_returns_what_the_batch_partition_wrote(trained):
    from ltv_pipeline.definitions import defs
    from ltv_pipeline.lib.scoring import OUTPUT_COLUMNS, score_online

    day = "2025-07-10"
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("score_job").execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    batch = scores.read_partition(trained / "warehouse.duckdb", day).set_index("user_id")
    sample = pd.concat([batch[~batch["cold_start"]].sample(15, random_state=0),
                        batch[batch["cold_start"]].head(3)])
    assert sample["segment"].nunique() >= 3
    for user_id, row in sample.iterrows():
        online = score_online(trained, user_id, day)
        assert online["known"] and online["as_of_date"] == day and online["latency_ms"] > 0
        for column in OUTPUT_COLUMNS[1:]:
            expected = None if pd.isna(row[column]) else row[column]
            assert online[column] == expected, (user_id, column, online[column], expected)
    unknown = score_online(trained, "never-seen-id", day)
    assert unknown["known"] is False and unknown["cold_start"] is True and unknown["segment"] == "new"
    assert unknown["predicted_value"] == pytest.approx(batch.loc[batch["cold_start"], "predicted_value"].mean())


def features_metadata(result: dg.ExecuteInProcessResult) -> dict:
    """The scoring_features materialization's metadata (a range's partitions share it)."""
    mats = [m for m in result.get_asset_materialization_events()
            if m.asset_key == dg.AssetKey("scoring_features")]
    assert mats and all(m.materialization.metadata == mats[0].materialization.metadata for m in mats)
    return {k: v.value for k, v in mats[0].materialization.metadata.items()}


def upstream_rebuilt(result: dg.ExecuteInProcessResult) -> bool:
    return features_metadata(result)["upstream_models_rebuilt"]


def features_at(home: Path, day: str) -> pd.DataFrame:
    with warehouse.connect(home / "warehouse.duckdb", read_only=True) as con:
        return con.execute(f"select * from marts.customer_features where cutoff_date = date '{day}' "
                           "order by user_id").df()


def test_the_training_build_records_the_upstream_models_it_built(trained):
    """The full pipeline's dbt build built every upstream model: the scoring partition that
    follows it (as in `ltv predict` and `make demo`) reuses them instead of rebuilding them."""
    assert AFTER_TRAINING["recorded"] is not None
    assert AFTER_TRAINING["recorded"] == AFTER_TRAINING["inputs"]
    assert dbt_state.upstream_models(settings.dbt_target_dir() / "manifest.json") >= {
        "stg_raw__transactions", "int_user_days_aggregated"}


def test_the_training_builds_scoring_date_is_scored_without_building_it_again(trained):
    """As in `ltv predict`: the full pipeline built AS_OF's features for every user; its
    scoring partition scores them without a dbt run. Once its rows no longer match the record
    (one deleted), the partition builds them again: the same rows the training build wrote."""
    trained_rows = features_at(trained, AS_OF)
    first = score({"dagster/partition": AS_OF})
    assert features_metadata(first)["features_reused"] is True
    assert features_metadata(first)["decay_half_life_days"] == 90
    scored = scores.read_partition(trained / "warehouse.duckdb", AS_OF).set_index("user_id").sort_index()
    assert len(scored) == len(trained_rows) == known_users(trained, AS_OF)

    with warehouse.connect(trained / "warehouse.duckdb") as con:
        con.execute(f"delete from marts.customer_features where cutoff_date = date '{AS_OF}' "
                    f"and user_id = '{trained_rows['user_id'].iloc[0]}'")
    again = score({"dagster/partition": AS_OF})
    assert features_metadata(again)["features_reused"] is False
    pd.testing.assert_frame_equal(features_at(trained, AS_OF), trained_rows)
    rescored = scores.read_partition(trained / "warehouse.duckdb", AS_OF).set_index("user_id").sort_index()
    pd.testing.assert_frame_equal(rescored.drop(columns="scored_at"), scored.drop(columns="scored_at"))
    assert features_metadata(score({"dagster/partition": AS_OF}))["features_reused"] is True

    # a range with one date built and one not: dbt builds only the other
    before = "2025-06-29"
    both = features_metadata(score({"dagster/asset_partition_range_start": before,
                                    "dagster/asset_partition_range_end": AS_OF}))
    assert both["features_reused"] is False and both["dates_reused"] == 1
    assert both["users_per_date"] == {d: known_users(trained, d) for d in (before, AS_OF)}
    pd.testing.assert_frame_equal(features_at(trained, AS_OF), trained_rows)

    # models trained with another half-life (as a training build with decay_half_life_days 30
    # records in its plan): the partition is built again, with that half-life
    def set_half_life(days: float) -> None:
        with warehouse.connect(trained / "warehouse.duckdb") as con:
            con.execute(f"update intermediate.int_cutoffs_planned set decay_half_life_days = {days}")
    set_half_life(30)
    try:
        other = features_metadata(score({"dagster/partition": AS_OF}))
        rows = features_at(trained, AS_OF)
    finally:
        set_half_life(90)
    assert other["features_reused"] is False and other["decay_half_life_days"] == 30
    assert (rows["decayed_revenue"] < trained_rows["decayed_revenue"]).any()
    pd.testing.assert_frame_equal(rows.drop(columns="decayed_revenue"), trained_rows.drop(columns="decayed_revenue"))
    score({"dagster/partition": AS_OF})  # back to the features the models learnt
    pd.testing.assert_frame_equal(features_at(trained, AS_OF), trained_rows)


def test_scoring_rebuilds_the_upstream_models_only_when_the_raw_tables_changed(trained):
    day = "2025-07-12"
    score({"dagster/partition": day})  # records the inputs the upstream models were built from
    again = score({"dagster/partition": day})
    assert upstream_rebuilt(again) is False
    before = scores.read_partition(trained / "warehouse.duckdb", day)
    assert len(before) == known_users(trained, day)

    # a new customer's purchase lands in raw (as a new load would): the day table is rebuilt
    # and the partition knows them
    with warehouse.connect(trained / "warehouse.duckdb") as con:
        con.execute("insert into raw.transactions select * replace ('u-late-load' as user_id, "
                    "'tx-late-load' as transaction_id, 'zz-late-load' as _batch_id) "
                    "from raw.transactions where ts < timestamp '2025-07-01' limit 1")
    changed = score({"dagster/partition": day})
    assert upstream_rebuilt(changed) is True
    after = scores.read_partition(trained / "warehouse.duckdb", day).set_index("user_id")
    assert len(after) == len(before) + 1 == known_users(trained, day)
    assert not after.loc["u-late-load", "cold_start"] and after.loc["u-late-load", "predicted_value"] > 0
    assert upstream_rebuilt(score({"dagster/partition": day})) is False


def test_explanations_cover_the_top_users_with_the_contributions_of_the_full_frame(trained):
    """score_as_of retrieves features only for the explained users; their top_features equal
    what the full population's LightGBM frame gives them."""
    from ltv_pipeline.lib import feature_store, gbm, scoring, training
    from ltv_pipeline.lib.registry import ModelRegistry

    out, used = scoring.score_as_of(trained, date.fromisoformat(AS_OF), 90, explain_top=7)
    explained = out[out["top_features"].notna()]
    assert len(explained) == 7 and used["explained_by"]
    assert explained["predicted_value"].min() >= out["predicted_value"].nlargest(7).min()

    registry = ModelRegistry(trained / "models")
    champ, models = scoring.champion_models(registry)
    _, model = scoring.explainer(registry, models, champ.name)
    with warehouse.connect(trained / "warehouse.duckdb", read_only=True) as con:
        population = marts.population(con, date.fromisoformat(AS_OF))
        summary = marts.btyd_summary(con, [date.fromisoformat(AS_OF)])
    entity = population[["user_id", "cutoff_date"]]
    feats = feature_store.training_frame(feature_store.feature_store(trained), entity)
    btyd = models["bgnbd_gg"].predict(summary, 90)
    full = training.model_frame(feats, pd.DataFrame({
        "user_id": btyd["user_id"], "cutoff_date": entity["cutoff_date"].iloc[0],
        "btyd_expected_purchases": btyd["expected_purchases"], "btyd_p_alive": btyd["p_alive"],
        "btyd_expected_spend": btyd["expected_spend"], "btyd_value": btyd["predicted_value"]}))
    want = gbm.contributions(model, full.set_index("user_id").loc[explained["user_id"]].reset_index(), top_k=3)
    assert explained["top_features"].tolist() == want["top_features"].tolist()


def test_chunked_scoring_gives_every_customer_the_same_row(trained):
    """score_as_of in chunks of customers (bounded memory) writes exactly what one piece does,
    segments included (thresholds over the whole population), for a BTYD and a LightGBM
    champion (whose feature frame is retrieved chunk by chunk)."""
    from ltv_pipeline.lib import scoring
    from ltv_pipeline.lib.registry import ModelRegistry

    registry = ModelRegistry(trained / "models")
    before = registry.champion()
    day = date.fromisoformat(AS_OF)
    try:
        for name in ("bgnbd_gg", "gbm_tweedie"):
            registry.set_champion(name, registry.version(name).version, "chunking test", {})
            whole, used = scoring.score_as_of(trained, day, 90, chunk_users=10**9)
            chunked, used_chunked = scoring.score_as_of(trained, day, 90, chunk_users=97)
            assert len(whole) > 5 * 97 and whole["model"].iloc[0].startswith(name)
            pd.testing.assert_frame_equal(chunked, whole)
            assert used_chunked["segment_thresholds"] == used["segment_thresholds"]
    finally:
        registry.set_champion(before.name, before.version, "restored after the chunking test", {})


def test_keep_scored_days_deletes_the_features_and_exports_of_older_dates_only(trained, monkeypatch):
    """LTV_KEEP_SCORED_DAYS: a partition deletes the per-date features and Feast exports of
    the dates older than the newest by that many days, except its own dates, the training
    plan's cutoffs and the online store's date; the scores stay. Last in this module: it
    deletes the dates the other tests scored."""
    from ltv_pipeline.lib import feature_exports

    def dates_in(sql: str) -> set[str]:
        with warehouse.connect(trained / "warehouse.duckdb", read_only=True) as con:
            return {str(r[0]) for r in con.execute(sql).fetchall()}

    monkeypatch.setenv("LTV_KEEP_SCORED_DAYS", "two")
    assert "LTV_KEEP_SCORED_DAYS='two'" in refusal("2025-08-01")
    with warehouse.connect(trained / "warehouse.duckdb", read_only=True) as con:
        kept = {d.isoformat() for d in marts.read_plan(con).all_cutoffs}
    online = feature_exports.online_as_of(trained)
    kept |= {online.isoformat()} if online else set()
    scored_before = set(scores.partition_counts(trained / "warehouse.duckdb"))
    assert "2025-07-08" in dates_in("select distinct cutoff_date from marts.customer_features")

    monkeypatch.setenv("LTV_KEEP_SCORED_DAYS", "2")
    first = features_metadata(score({"dagster/asset_partition_range_start": "2025-08-01",
                                     "dagster/asset_partition_range_end": "2025-08-03"}))
    assert first["keep_scored_days"] == 2 and "2025-07-08" <= first["dates_pruned"]["last"] < "2025-08-01"
    left = kept | {"2025-08-01", "2025-08-02", "2025-08-03"}  # the run's own dates stay
    assert dates_in("select distinct cutoff_date from marts.customer_features") == left
    assert dates_in("select distinct cutoff_date from marts.customer_btyd_summary") <= left

    second = features_metadata(score({"dagster/partition": "2025-08-04"}))
    assert second["dates_pruned"]["first"] == "2025-08-01" and second["dates_pruned"]["dates"] == 2
    left = kept | {"2025-08-03", "2025-08-04"}
    assert dates_in("select distinct cutoff_date from marts.customer_features") == left
    files = {p.stem for p in (trained / "feast" / "data" / "customer_features").glob("*.parquet")}
    assert files == left
    assert dates_in(f"select cutoff_date from {dbt_state.CUTOFFS_BUILT_TABLE}") <= left
    assert scored_before <= set(scores.partition_counts(trained / "warehouse.duckdb"))  # scores stay
