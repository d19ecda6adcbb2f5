{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ ltv_delete_cutoffs_being_built(by_horizon=true) }}",
    )
}}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_planned') }}

),

features as (

    select * from {{ ref('customer_features') }}

),

user_days as (

    select * from {{ ref('int_user_days_aggregated') }}

),

population as (

    -- Every user of the cutoff's features, so a customer without purchases gets zeros.
    select
        features.user_id,
        cutoffs.cutoff_date,
        cutoffs.horizon_days,
        cutoffs.label_start_date,
        cutoffs.label_end_date
    from features
    inner join cutoffs
        on features.cutoff_date = cutoffs.cutoff_date

),

window_days as (

    -- The label window [D + 1 day, D + 1 day + H days): the only rows at or after D + 1 day
    -- that any model reads.
    select
        cutoffs.cutoff_date,
        user_days.user_id,
        user_days.revenue,
        user_days.margin,
        user_days.n_orders,
        user_days.n_refunds,
        user_days.transaction_first_ts,
        user_days.transaction_last_ts
    from cutoffs
    inner join user_days
        on user_days.activity_date >= cutoffs.label_start_date
        and user_days.activity_date < cutoffs.label_end_date
    where user_days.transaction_last_ts is not null

),

window_aggregated as (

    select
        window_days.user_id,
        window_days.cutoff_date,
        {{ ltv_exact_sum('window_days.revenue') }} as value,
        {{ ltv_exact_sum('window_days.margin') }} as margin,
        sum(window_days.n_orders) as n_orders,
        sum(window_days.n_refunds) as n_refunds,
        min(window_days.transaction_first_ts) as label_min_ts,
        max(window_days.transaction_last_ts) as label_max_ts
    from window_days
    group by window_days.user_id, window_days.cutoff_date

),

data_end as (

    select max(user_days.activity_date) as last_transaction_date
    from user_days
    where user_days.transaction_last_ts is not null

),

final as (

    select
        population.user_id,
        population.cutoff_date,
        population.horizon_days,
        population.label_start_date,
        population.label_end_date,
        cast(coalesce(window_aggregated.value, 0) as {{ ltv_type_double() }}) as value,
        cast(coalesce(window_aggregated.margin, 0) as {{ ltv_type_double() }}) as margin,
        cast(coalesce(window_aggregated.n_orders, 0) as {{ dbt.type_bigint() }}) as n_orders,
        cast(coalesce(window_aggregated.n_refunds, 0) as {{ dbt.type_bigint() }}) as n_refunds,
        window_aggregated.label_min_ts,
        window_aggregated.label_max_ts,
        coalesce(
            data_end.last_transaction_date >= cast(
                {{ dbt.dateadd('day', -1, 'population.label_end_date') }} as date
            ),
            false
        ) as is_window_complete
    from population
    cross join data_end
    left join window_aggregated
        on population.user_id = window_aggregated.user_id
        and population.cutoff_date = window_aggregated.cutoff_date

)

select * from final
