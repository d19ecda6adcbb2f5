{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ ltv_delete_cutoffs_being_built() }}",
    )
}}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_planned') }}

),

user_days as (

    select * from {{ ref('int_user_days_aggregated') }}

),

training_users as (

    select * from {{ ref('int_training_users') }}

),

purchase_days as (

    -- lifetimes' summary_data_from_transaction_data(freq="D", observation_period_end=D):
    -- one value per purchase day, days before D + 1 day only. The value is the day's net
    -- total (purchases minus refunds that day), floored at 0: a refund larger than the day's
    -- purchases returns an earlier order and never makes a purchase day worth less than
    -- nothing (Gamma-Gamma needs non-negative spend).
    select
        cutoffs.cutoff_date,
        user_days.user_id,
        user_days.activity_date,
        case when user_days.revenue > 0 then user_days.revenue else 0 end as day_value,
        user_days.is_first_purchase_day,
        user_days.transaction_last_ts
    from cutoffs
    inner join user_days
        on user_days.activity_date < cutoffs.history_end_date
    where user_days.is_purchase_day
        and (not {{ ltv_is_sampled_cutoff('cutoffs') }}
            or user_days.user_id in (select training_users.user_id from training_users))

),

aggregated as (

    select
        purchase_days.user_id,
        purchase_days.cutoff_date,
        count(*) as n_purchase_days,
        min(purchase_days.activity_date) as first_purchase_date,
        max(purchase_days.activity_date) as last_purchase_date,
        -- The first purchase day ever is the first before any later cutoff too.
        {{ ltv_exact_sum(
            'case when purchase_days.is_first_purchase_day then 0 else purchase_days.day_value end'
        ) }} as repeat_revenue,
        {{ ltv_exact_sum('purchase_days.day_value') }} as purchase_revenue,
        max(purchase_days.transaction_last_ts) as max_source_ts
    from purchase_days
    group by purchase_days.user_id, purchase_days.cutoff_date

),

final as (

    select
        aggregated.user_id,
        aggregated.cutoff_date,
        cast(aggregated.n_purchase_days - 1 as {{ dbt.type_bigint() }}) as frequency,
        {{ dbt.datediff('aggregated.first_purchase_date', 'aggregated.last_purchase_date', 'day') }}
            as recency,
        {{ dbt.datediff('aggregated.first_purchase_date', 'aggregated.cutoff_date', 'day') }}
            as {{ adapter.quote('T') }},
        case
            when aggregated.n_purchase_days > 1
                then cast(aggregated.repeat_revenue as {{ ltv_type_double() }})
                    / (aggregated.n_purchase_days - 1)
            else cast(0 as {{ ltv_type_double() }})
        end as monetary_value,
        -- Every purchase day's mean, the first included: Gamma-Gamma's posterior spend
        -- conditions on it (lib/btyd.SpendFit.expected_spend; the fit stays on repeat days).
        cast(aggregated.purchase_revenue as {{ ltv_type_double() }})
            / aggregated.n_purchase_days as mean_order_value,
        aggregated.first_purchase_date,
        aggregated.last_purchase_date,
        aggregated.max_source_ts
    from aggregated

)

select * from final
