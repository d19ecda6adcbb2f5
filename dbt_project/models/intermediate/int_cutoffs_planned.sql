{#- The cutoffs to build and the time rule's bounds for each, from vars (cutoffs,
    scoring_date, backtest_origins, train_cutoffs, horizon_days), and what the build's amounts
    and features were computed with: the half-life of the decayed spend feature
    (decay_half_life_days: a scoring build reads the training plan's, so the features it scores
    are computed as the ones the models learnt) and the base currency (base_currency: scoring
    refuses another one). For a cutoff D and horizon H:
      history     = ts < history_end_ts                  (D + 1 day)
      label window = [label_start_ts, label_end_ts)       ([D + 1 day, D + 1 day + H days))
    Every per-cutoff model reads these columns instead of re-deriving the rule.
    A scoring build (var build_kind = 'scoring': the daily scoring partitions) keeps its plan in
    its own table, int_cutoffs_scoring, so it never replaces the training plan that the
    training and evaluation assets read from int_cutoffs_planned. -#}
{{ config(alias=ltv_cutoff_plan_alias()) }}
{%- set dates = ltv_cutoff_dates() -%}
{%- set horizon = ltv_horizon_days() -%}
{%- set origins = [] -%}
{%- for d in var('backtest_origins', []) -%}{%- do origins.append(ltv_validate_date(d)) -%}{%- endfor -%}
{%- set trains = [] -%}
{%- for d in var('train_cutoffs', []) -%}{%- do trains.append(ltv_validate_date(d)) -%}{%- endfor -%}
{%- set scoring = ltv_validate_date(var('scoring_date')) if var('scoring_date', none) else none -%}

with

planned as (

    {% for iso in dates %}
    select
        {{ ltv_date_literal(iso) }} as cutoff_date,
        {{ 'true' if iso == scoring else 'false' }} as is_scoring_date,
        {{ 'true' if iso in origins else 'false' }} as is_backtest_origin,
        {{ 'true' if iso in trains else 'false' }} as is_train_cutoff
    {% if not loop.last %}union all{% endif %}
    {% else %}
    select
        cast(null as date) as cutoff_date,
        false as is_scoring_date,
        false as is_backtest_origin,
        false as is_train_cutoff
    where 1 = 0
    {% endfor %}

),

bounds as (

    select
        planned.cutoff_date,
        {{ horizon }} as horizon_days,
        cast({{ var('decay_half_life_days') | float }} as {{ ltv_type_double() }}) as decay_half_life_days,
        '{{ var("base_currency") }}' as base_currency,
        cast({{ dbt.dateadd('day', 1, 'planned.cutoff_date') }} as date) as history_end_date,
        cast({{ dbt.dateadd('day', 1 + horizon, 'planned.cutoff_date') }} as date)
            as label_end_date,
        planned.is_scoring_date,
        planned.is_backtest_origin,
        planned.is_train_cutoff
    from planned

),

final as (

    select
        bounds.cutoff_date,
        bounds.horizon_days,
        bounds.decay_half_life_days,
        bounds.base_currency,
        bounds.history_end_date,
        cast(bounds.history_end_date as {{ dbt.type_timestamp() }}) as history_end_ts,
        bounds.history_end_date as label_start_date,
        cast(bounds.history_end_date as {{ dbt.type_timestamp() }}) as label_start_ts,
        bounds.label_end_date,
        cast(bounds.label_end_date as {{ dbt.type_timestamp() }}) as label_end_ts,
        bounds.is_scoring_date,
        bounds.is_backtest_origin,
        bounds.is_train_cutoff
    from bounds

)

select * from final
