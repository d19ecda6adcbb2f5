"""Transform: the dbt models (staging -> intermediate -> marts) as Dagster assets.

One @dbt_assets definition, built once. Each run plans its cutoffs with lib.cutoffs and hands
them to dbt as --vars through lib.dbt_vars; the per-cutoff marts are incremental, so building
a cutoff again replaces it.
"""

from collections.abc import Iterator, Mapping
from datetime import date
from functools import cache
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from pydantic import Field

from ltv_pipeline import groups, settings
from ltv_pipeline.defs.resources import WarehouseResource
from ltv_pipeline.lib import cutoffs as cutoff_rules
from ltv_pipeline.lib import dbt_state, marts
from ltv_pipeline.lib.dbt_project import ensure_manifest, run_target
from ltv_pipeline.lib.dbt_vars import DEFAULT_DECAY_HALF_LIFE_DAYS, as_cli_args, vars_for_plan
from ltv_pipeline.lib.errors import InputError

DBT_ASSETS_NAME = "ltv_dbt_models"
PER_CUTOFF_MARTS = ("customer_features", "customer_btyd_summary", "customer_labels")
MARTS = (*PER_CUTOFF_MARTS, "cohort_revenue")
MART_KEYS = {dg.AssetKey(m) for m in MARTS}


class TransformConfig(dg.Config):
    """What the dbt build computes: the cutoffs (from the scoring date and the backtest plan,
    see lib.cutoffs.plan_cutoffs) and the label horizon."""

    as_of: str | None = Field(
        default=None,
        description="Scoring date YYYY-MM-DD; default: the last transaction date in raw.transactions.",
    )
    horizon_days: int = Field(
        default=settings.DEFAULT_HORIZON_DAYS, gt=0, description="Label window length H in days."
    )
    n_origins: int = Field(default=cutoff_rules.DEFAULT_N_ORIGINS, ge=0,
                           description="Backtest origins (as_of - H, then every origin_spacing_days earlier).")
    origin_spacing_days: int = Field(default=cutoff_rules.DEFAULT_ORIGIN_SPACING_DAYS, gt=0)
    n_train_cutoffs: int = Field(default=cutoff_rules.DEFAULT_N_TRAIN_CUTOFFS, ge=0,
                                 description="Training cutoffs per model (final and per origin).")
    train_spacing_days: int = Field(default=cutoff_rules.DEFAULT_TRAIN_SPACING_DAYS, gt=0)
    min_history_days: int = Field(default=cutoff_rules.DEFAULT_MIN_HISTORY_DAYS, ge=0,
                                  description="Cutoffs earlier than first transaction + this are dropped.")
    decay_half_life_days: float = Field(default=DEFAULT_DECAY_HALF_LIFE_DAYS, gt=0,
                                        description="Half-life of the time-decayed spend feature.")
    full_refresh: bool = Field(default=False,
                               description="Rebuild the incremental marts from scratch (drops other cutoffs).")

    def as_of_date(self) -> date | None:
        if not self.as_of:
            return None
        try:
            return date.fromisoformat(self.as_of)
        except ValueError:
            raise InputError(f"as_of (--as-of) {self.as_of!r} is not a date in YYYY-MM-DD form") from None


class LtvDbtTranslator(DagsterDbtTranslator):
    """Model keys are the bare model names (customer_features, ...); every model is in the
    transform group and tagged with its layer (the dbt folder: staging, intermediate, marts).
    Sources keep the keys their meta names: the ingest assets."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return groups.TRANSFORM

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        fqn = dbt_resource_props.get("fqn", [])
        layer = {"layer": fqn[1]} if len(fqn) > 2 else {}
        return {**super().get_tags(dbt_resource_props), **layer}


def data_span(warehouse: WarehouseResource) -> tuple[date, date]:
    """First and last transaction dates, read with a connection closed before returning (dbt
    cannot lock the file while this process holds one)."""
    try:
        with warehouse.connect(read_only=True) as con:
            row = con.execute(
                "select cast(min(ts) as date), cast(max(ts) as date) from raw.transactions"
            ).fetchone()
    except (FileNotFoundError, duckdb.CatalogException) as exc:
        raise dg.Failure(f"no raw.transactions in {warehouse.path}: load a source first "
                         f"(ltv demo or the raw_tables asset) ({exc})") from exc
    if row is None or row[1] is None:
        raise dg.Failure("raw.transactions is empty: load a source first (ltv demo or the raw_tables asset)")
    return row[0], row[1]


def plan_for(config: TransformConfig, warehouse: WarehouseResource) -> cutoff_rules.CutoffPlan:
    """The cutoffs of this build. A scoring date before the first transaction has no history
    to learn from or score: an InputError (exit code 2 in the CLI) naming the option and dates."""
    first, last = data_span(warehouse)
    as_of = config.as_of_date() or last
    if as_of < first:
        raise InputError(
            f"the cutoff {as_of} (as_of; `ltv demo --as-of`, `ltv predict --cutoff`) is before the first "
            f"transaction date in the data, {first} "
            f"(raw.transactions spans {first} to {last}): there is no history to forecast from; "
            f"choose a date on or after {first}"
        )
    return cutoff_rules.plan_cutoffs(
        as_of=as_of,
        horizon_days=config.horizon_days,
        n_origins=config.n_origins,
        origin_spacing_days=config.origin_spacing_days,
        n_train_cutoffs=config.n_train_cutoffs,
        train_spacing_days=config.train_spacing_days,
        data_start=first,
        min_history_days=config.min_history_days,
        observed_until=last,
    )


def mart_row_counts(
    warehouse: WarehouseResource, cutoffs: list[str], horizon_days: int
) -> dict[str, dict[str, Any]]:
    """Row counts of the marts that exist (total, and for this run's cutoffs and horizon),
    read with a short-lived connection once dbt has finished."""
    in_list = marts.in_list(cutoffs)  # parsed dates, never pasted text
    counts: dict[str, dict[str, Any]] = {}
    with warehouse.connect(read_only=True) as con:
        present = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall()}
        for mart in sorted(present & set(MARTS)):
            total = _count(con, f"select count(*) from marts.{mart}")
            counts[mart] = {"dagster/row_count": total}
            if mart in PER_CUTOFF_MARTS and cutoffs:
                horizon = f" and horizon_days = {int(horizon_days)}" if mart == "customer_labels" else ""
                built = _count(
                    con, f"select count(*) from marts.{mart} where cutoff_date in ({in_list}){horizon}"
                )
                counts[mart] |= {"rows_for_built_cutoffs": built, "built_cutoffs": cutoffs}
    return counts


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


@cache
def build_dbt_assets() -> dg.AssetsDefinition:
    """The dbt assets, built once per process from the parsed manifest."""

    @dbt_assets(
        manifest=ensure_manifest(),
        # dbt's tests on the raw sources become asset checks of the ingest assets (otherwise
        # dagster-dbt logs each one as an AssetObservation with a warning)
        dagster_dbt_translator=LtvDbtTranslator(
            settings=DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True)
        ),
        name=DBT_ASSETS_NAME,
    )
    def ltv_dbt_models(
        context: dg.AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse_db: WarehouseResource,
        config: TransformConfig,
    ) -> Iterator[Any]:
        """dbt build of the selected models for the planned cutoffs (runs dbt's data tests
        and unit tests too; a failing test fails the run)."""
        plan = plan_for(config, warehouse_db)
        dbt_vars = vars_for_plan(plan, decay_half_life_days=config.decay_half_life_days)
        context.log.info(
            f"as_of {plan.as_of}, horizon {plan.horizon_days} days, cutoffs {dbt_vars['cutoffs']}"
        )
        if plan.labels_until and plan.labels_until < plan.as_of:
            gap = (plan.as_of - plan.labels_until).days
            context.log.warning(
                f"the data end on {plan.labels_until}, {gap} day(s) before as_of {plan.as_of}: the backtest "
                f"origins and training labels end by {plan.labels_until}; the scoring features read the "
                "days after it as days without purchases (the time rule)")
        args = ["build", *as_cli_args(dbt_vars)]
        if config.full_refresh:
            args.append("--full-refresh")
        target = run_target(settings.ltv_home(), context.run.run_id)
        # The upstream models a scoring build reuses (lib/dbt_state.py): forget their record
        # before rebuilding any of them; record it again after a build of all of them.
        selected = {k.path[-1] for k in context.selected_asset_keys}
        upstream = dbt_state.upstream_models(ensure_manifest())
        inputs = None
        if selected & upstream:
            with warehouse_db.connect() as con:
                inputs = dbt_state.fingerprint(con, settings.DBT_PROJECT_DIR, dbt_vars["base_currency"])
                dbt_state.clear(con)
        # Mart events wait for the row counts, which can only be read once dbt has released
        # the warehouse; their order (output, then its checks) is kept.
        held: list[Any] = []
        try:
            for event in dbt.cli(args, context=context, target_path=target).stream():
                if _event_key(context, event) in MART_KEYS:
                    held.append(event)
                else:
                    yield event
        except BaseException:
            yield from held
            raise
        counts = mart_row_counts(warehouse_db, dbt_vars["cutoffs"], plan.horizon_days)
        if inputs is not None and upstream <= selected:
            with warehouse_db.connect() as con:
                dbt_state.record(con, inputs)
                if set(dbt_state.PER_CUTOFF_MODELS) <= selected:  # every user's rows at D
                    dbt_state.record_cutoffs(con, [plan.scoring_date], inputs,
                                             dbt_vars["decay_half_life_days"])
        for event in held:
            key = _event_key(context, event)
            extra = counts.get(key.path[-1], {}) if key else {}
            if isinstance(event, dg.Output) and extra:
                event = event.with_metadata({**event.metadata, **extra})
            yield event

    return ltv_dbt_models


def _event_key(context: dg.AssetExecutionContext, event: Any) -> dg.AssetKey | None:
    if isinstance(event, dg.Output):
        return context.asset_key_for_output(event.output_name)
    return getattr(event, "asset_key", None)
