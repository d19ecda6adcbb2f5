{#- Cutoff dates from vars: validated, de-duplicated, sorted ISO strings. With var cutoffs_table
    (a scoring build), the dates of that table's cutoff_date column are added, read when the
    models run: the vars then stay the same from one scoring date to the next, so dbt can
    reuse its parse of the project (partial parsing; any change of --vars reparses all of it).
    While parsing, the table is not read. -#}
{% macro ltv_cutoff_dates() %}
    {%- set dates = [] -%}
    {%- set raw = var('cutoffs', []) -%}
    {%- if raw is string -%}{%- set raw = [raw] -%}{%- endif -%}
    {%- set table = var('cutoffs_table', none) -%}
    {%- if table and execute -%}
        {%- set requested = run_query(
            "select strftime(cutoff_date, '%Y-%m-%d') from " ~ table ~ " order by 1") -%}
        {%- set raw = raw + (requested.columns[0].values() | list) -%}
    {%- endif -%}
    {%- set candidates = raw + var('backtest_origins', []) + var('train_cutoffs', []) -%}
    {%- if var('scoring_date', none) -%}
        {%- set candidates = candidates + [var('scoring_date')] -%}
    {%- endif -%}
    {%- for value in candidates -%}
        {%- set iso = ltv_validate_date(value) -%}
        {%- if iso not in dates -%}{%- do dates.append(iso) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(dates | sort) }}
{% endmacro %}


{% macro ltv_validate_date(value) %}
    {%- set text = value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error(
            "cutoff dates must be 'YYYY-MM-DD' strings, got " ~ (value | string)) }}
    {%- endif -%}
    {%- set parsed = modules.datetime.datetime.strptime(text, '%Y-%m-%d') -%}
    {{ return(parsed.strftime('%Y-%m-%d')) }}
{% endmacro %}


{#- A date literal in the adapter's own syntax (dbt.date), from 'YYYY-MM-DD'. -#}
{% macro ltv_date_literal(iso) -%}
    {%- set parsed = modules.datetime.datetime.strptime(ltv_validate_date(iso), '%Y-%m-%d') -%}
    {{ dbt.date(parsed.year, parsed.month, parsed.day) }}
{%- endmacro %}


{% macro ltv_horizon_days() %}
    {%- set horizon = var('horizon_days') | int -%}
    {%- if horizon <= 0 -%}
        {{ exceptions.raise_compiler_error("horizon_days must be a positive integer, got "
            ~ (var('horizon_days') | string)) }}
    {%- endif -%}
    {{ return(horizon) }}
{% endmacro %}


{#- The rows of the cutoffs this build writes, as a predicate on a per-cutoff mart's columns
    (dates as literals, so DuckDB skips the row groups of other dates); with by_horizon, only
    the label window H of this build. False when there is no cutoff to build. -#}
{% macro ltv_cutoffs_being_built(by_horizon=false) -%}
    {%- set dates = ltv_cutoff_dates() -%}
    {%- if dates | length == 0 -%}
        1 = 0
    {%- else -%}
        cutoff_date in (
            {%- for iso in dates -%}
                {{ ltv_date_literal(iso) }}{{ ", " if not loop.last }}
            {%- endfor -%}
        )
        {%- if by_horizon %} and horizon_days = {{ ltv_horizon_days() }}{% endif %}
    {%- endif -%}
{%- endmacro %}


{#- Pre-hook of the per-cutoff marts: rebuilding a cutoff replaces all of its rows (also rows of
    users that no longer belong to it), so a cutoff built twice is never duplicated. The marts
    then append (incremental_strategy 'append'): the delete+insert strategy's delete on the
    unique key found nothing left and joined every date ever scored to do so (1M users, 32
    dates: ~0.05 s of a daily build, growing by a date a day). -#}
{% macro ltv_delete_cutoffs_being_built(by_horizon=false) %}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ ltv_cutoffs_being_built(by_horizon) }}
    {%- endif -%}
{% endmacro %}


{#- The per-cutoff marts and whether their rows are per label window (horizon_days) too. -#}
{% macro ltv_per_cutoff_marts() %}
    {{ return({'customer_features': false, 'customer_btyd_summary': false,
               'customer_labels': true}) }}
{% endmacro %}


{#- dbt's hook for a data test's `where` config (dbt docs, resource-configs/where), overridden:
    the tests of a per-cutoff mart read only the rows this build writes. The other dates' rows
    were tested when they were built and no build changes them but its own, so without the
    filter each daily scoring build re-tested every date ever scored (1M users, 32 dates: 19 s
    of tests around an 11 s model build, growing by a date a day). A test's own `where` still
    applies. Singular tests filter with ltv_cutoffs_being_built() themselves. -#}
{% macro get_where_subquery(relation) -%}
    {%- set filters = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}{%- do filters.append('(' ~ where ~ ')') -%}{%- endif -%}
    {%- set per_cutoff = ltv_per_cutoff_marts() -%}
    {%- if relation.identifier in per_cutoff -%}
        {%- do filters.append('(' ~ ltv_cutoffs_being_built(per_cutoff[relation.identifier]) ~ ')') -%}
    {%- endif -%}
    {%- if filters -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ filters | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#- Where int_cutoffs_planned is stored: the training plan (build_kind 'training', the default)
    or the plan of a scoring build ('scoring'), so the two never overwrite each other. -#}
{% macro ltv_cutoff_plan_alias() %}
    {%- set kind = var('build_kind', 'training') -%}
    {%- if kind == 'training' -%}{{ return('int_cutoffs_planned') }}
    {%- elif kind == 'scoring' -%}{{ return('int_cutoffs_scoring') }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("build_kind must be 'training' or 'scoring', got " ~ kind) }}
    {%- endif -%}
{% endmacro %}


{#- True for the cutoffs built for the training sample only (training cutoffs and backtest
    origins, int_training_users); a scoring date covers every user. Null flags (unit-test
    fixtures) count as false. -#}
{% macro ltv_is_sampled_cutoff(cutoffs) -%}
    (coalesce({{ cutoffs }}.is_train_cutoff, false) or coalesce({{ cutoffs }}.is_backtest_origin, false))
{%- endmacro %}
