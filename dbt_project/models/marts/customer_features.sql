{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ ltv_delete_cutoffs_being_built() }}",
    )
}}

{%- set windows = [30, 90, 180, 365] -%}
{%- set event_windows = [30, 90] -%}
{%- set seasons = ['winter', 'spring', 'summer', 'autumn'] -%}
{%- set half_life = var('decay_half_life_days') | float -%}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_planned') }}

),

user_days as (

    select * from {{ ref('int_user_days_aggregated') }}

),

users as (

    select * from {{ ref('int_users_unioned') }}

),

dimensions as (

    select * from {{ ref('int_user_dimensions_first_seen') }}

),

training_users as (

    select * from {{ ref('int_training_users') }}

),

population as (

    -- Everyone known before D + 1 day: a transaction or an event before it, or a signup, with
    -- the attributes `joined` reads (carried here: joining users again cost a 1M x 1M hash
    -- join, ~0.35 s of a 1M-user scoring build).
    select
        users.user_id,
        users.signup_ts,
        users.signup_date,
        users.first_transaction_ts,
        users.first_transaction_country,
        users.country,
        users.device,
        users.acquisition_source,
        cutoffs.cutoff_date,
        cutoffs.history_end_date,
        cutoffs.history_end_ts
    from users
    cross join cutoffs
    where (users.first_activity_date < cutoffs.history_end_date
        or users.signup_ts < cutoffs.history_end_ts)
        and (not {{ ltv_is_sampled_cutoff('cutoffs') }}
            or users.user_id in (select training_users.user_id from training_users))

),

history as (

    -- The time rule: only days before D + 1 day. days_before = 0 on D itself.
    select
        cutoffs.cutoff_date,
        user_days.*,
        {{ dbt.datediff('user_days.activity_date', 'cutoffs.cutoff_date', 'day') }} as days_before
    from cutoffs
    inner join user_days
        on user_days.activity_date < cutoffs.history_end_date
    where not {{ ltv_is_sampled_cutoff('cutoffs') }}
        or user_days.user_id in (select training_users.user_id from training_users)

),

history_aggregated as (

    select
        history.user_id,
        history.cutoff_date,
        sum(history.n_orders) as n_orders,
        sum(case when history.is_purchase_day then 1 else 0 end) as n_purchase_days,
        min(case when history.is_purchase_day then history.activity_date end)
            as first_purchase_date,
        max(case when history.is_purchase_day then history.activity_date end)
            as last_purchase_date,
        {{ ltv_exact_sum('history.gross_revenue') }} as gross_revenue,
        {{ ltv_exact_sum('history.refund_amount') }} as refund_amount,
        {{ ltv_exact_sum('history.revenue') }} as revenue,
        {{ ltv_exact_sum('history.margin') }} as margin,
        sum(history.n_refunds) as n_refunds,
        {{ ltv_exact_sum('history.order_value_sum_squares') }} as order_value_sum_squares,
        max(history.order_value_max) as order_value_max,
        {%- for n in windows %}
        {{ ltv_exact_sum('case when history.days_before < ' ~ n ~ ' then history.revenue else 0 end') }}
            as revenue_{{ n }}d,
        sum(case when history.days_before < {{ n }} then history.n_orders else 0 end)
            as orders_{{ n }}d,
        {%- endfor %}
        {{ ltv_exact_sum(
            'case when history.days_before >= 90 and history.days_before < 180
                then history.revenue else 0 end'
        ) }} as revenue_prev_90d,
        {{ ltv_exact_sum(
            'history.revenue * exp(-0.6931471805599453 * cast(history.days_before as '
            ~ ltv_type_double() ~ ') / ' ~ half_life ~ ')'
        ) }} as decayed_revenue,
        count(history.days_since_previous_purchase) as interval_count,
        sum(history.days_since_previous_purchase) as interval_sum,
        sum(history.days_since_previous_purchase * history.days_since_previous_purchase)
            as interval_sum_squares,
        {%- for weekday in range(1, 8) %}
        sum(case when history.iso_weekday = {{ weekday }} then history.n_orders else 0 end)
            as orders_weekday_{{ weekday }},
        {%- endfor %}
        {%- for season in seasons %}
        sum(case when history.season = '{{ season }}' then history.n_orders else 0 end)
            as orders_{{ season }},
        {%- endfor %}
        {%- for n in event_windows %}
        sum(case when history.days_before < {{ n }} then history.n_sessions else 0 end)
            as sessions_{{ n }}d,
        sum(case when history.days_before < {{ n }} then history.n_product_views else 0 end)
            as product_views_{{ n }}d,
        sum(case when history.days_before < {{ n }} then history.n_cart_adds else 0 end)
            as cart_adds_{{ n }}d,
        sum(case when history.days_before < {{ n }} then history.n_checkouts else 0 end)
            as checkouts_{{ n }}d,
        sum(
            case when history.days_before < {{ n }} and history.n_cart_adds > 0
                then 1 else 0 end
        ) as cart_add_days_{{ n }}d,
        sum(
            case when history.days_before < {{ n }} and history.is_abandoned_cart_day
                then 1 else 0 end
        ) as abandoned_cart_days_{{ n }}d,
        {%- endfor %}
        sum(history.n_events) as n_events,
        max(case when history.n_events > 0 then history.activity_date end) as last_event_date,
        max(history.last_ts) as last_activity_ts
    from history
    group by history.user_id, history.cutoff_date

),

dimensions_aggregated as (

    select
        dimensions.user_id,
        cutoffs.cutoff_date,
        sum(case when dimensions.dimension = 'channel' then 1 else 0 end) as n_channels,
        sum(case when dimensions.dimension = 'sku' then 1 else 0 end) as n_skus
    from cutoffs
    inner join dimensions
        on dimensions.first_seen_date < cutoffs.history_end_date
    where not {{ ltv_is_sampled_cutoff('cutoffs') }}
        or dimensions.user_id in (select training_users.user_id from training_users)
    group by dimensions.user_id, cutoffs.cutoff_date

),

joined as (

    select
        population.user_id,
        population.cutoff_date,
        population.history_end_date,
        population.history_end_ts,
        coalesce(history_aggregated.n_orders, 0) as n_orders,
        coalesce(history_aggregated.n_purchase_days, 0) as n_purchase_days,
        history_aggregated.first_purchase_date,
        history_aggregated.last_purchase_date,
        coalesce(history_aggregated.gross_revenue, 0) as gross_revenue,
        coalesce(history_aggregated.refund_amount, 0) as refund_amount,
        coalesce(history_aggregated.revenue, 0) as revenue,
        coalesce(history_aggregated.margin, 0) as margin,
        coalesce(history_aggregated.n_refunds, 0) as n_refunds,
        history_aggregated.order_value_sum_squares,
        history_aggregated.order_value_max,
        {%- for n in windows %}
        coalesce(history_aggregated.revenue_{{ n }}d, 0) as revenue_{{ n }}d,
        coalesce(history_aggregated.orders_{{ n }}d, 0) as orders_{{ n }}d,
        {%- endfor %}
        coalesce(history_aggregated.revenue_prev_90d, 0) as revenue_prev_90d,
        coalesce(history_aggregated.decayed_revenue, 0) as decayed_revenue,
        coalesce(history_aggregated.interval_count, 0) as interval_count,
        history_aggregated.interval_sum,
        history_aggregated.interval_sum_squares,
        {%- for weekday in range(1, 8) %}
        coalesce(history_aggregated.orders_weekday_{{ weekday }}, 0) as orders_weekday_{{ weekday }},
        {%- endfor %}
        {%- for season in seasons %}
        coalesce(history_aggregated.orders_{{ season }}, 0) as orders_{{ season }},
        {%- endfor %}
        {%- for n in event_windows %}
        {%- for name in ['sessions', 'product_views', 'cart_adds', 'checkouts', 'cart_add_days', 'abandoned_cart_days'] %}
        coalesce(history_aggregated.{{ name }}_{{ n }}d, 0) as {{ name }}_{{ n }}d,
        {%- endfor %}
        {%- endfor %}
        coalesce(history_aggregated.n_events, 0) as n_events,
        history_aggregated.last_event_date,
        history_aggregated.last_activity_ts,
        coalesce(dimensions_aggregated.n_channels, 0) as n_channels,
        coalesce(dimensions_aggregated.n_skus, 0) as n_skus,
        -- Attributes count only once they exist before D + 1 day.
        case when population.signup_ts < population.history_end_ts then population.signup_ts end
            as signup_ts,
        case when population.signup_ts < population.history_end_ts then population.signup_date end
            as signup_date,
        case
            when population.first_transaction_ts < population.history_end_ts
                then population.first_transaction_ts
        end as first_transaction_ts,
        coalesce(
            population.country,
            case
                when population.first_transaction_ts < population.history_end_ts
                    then population.first_transaction_country
            end
        ) as country,
        population.device,
        population.acquisition_source
    from population
    left join history_aggregated
        on population.user_id = history_aggregated.user_id
        and population.cutoff_date = history_aggregated.cutoff_date
    left join dimensions_aggregated
        on population.user_id = dimensions_aggregated.user_id
        and population.cutoff_date = dimensions_aggregated.cutoff_date

),

final as (

    select
        joined.user_id,
        joined.cutoff_date,
        joined.n_orders = 0 as is_cold_start,
        joined.signup_ts is not null as has_signup,

        -- RFM and tenure
        cast(joined.n_orders as {{ dbt.type_bigint() }}) as n_orders,
        cast(joined.n_purchase_days as {{ dbt.type_bigint() }}) as n_purchase_days,
        cast(
            case when joined.n_purchase_days > 0 then joined.n_purchase_days - 1 else 0 end
            as {{ dbt.type_bigint() }}
        ) as frequency,
        {{ dbt.datediff('joined.last_purchase_date', 'joined.cutoff_date', 'day') }}
            as recency_days,
        {{ dbt.datediff('joined.first_purchase_date', 'joined.cutoff_date', 'day') }}
            as tenure_days,
        {{ dbt.datediff('joined.signup_date', 'joined.cutoff_date', 'day') }}
            as days_since_signup,
        joined.first_purchase_date,
        joined.last_purchase_date,
        {{ ltv_ratio('joined.gross_revenue', 'joined.n_orders') }} as monetary_mean,
        cast(joined.order_value_max as {{ ltv_type_double() }}) as monetary_max,
        {{ ltv_sample_std('joined.n_orders', 'joined.gross_revenue', 'joined.order_value_sum_squares') }}
            as monetary_std,

        -- Totals (base currency; revenue and margin net of refunds)
        cast(joined.revenue as {{ ltv_type_double() }}) as revenue_total,
        cast(joined.gross_revenue as {{ ltv_type_double() }}) as gross_revenue_total,
        cast(joined.refund_amount as {{ ltv_type_double() }}) as refund_amount_total,
        cast(joined.margin as {{ ltv_type_double() }}) as margin_total,
        cast(joined.n_refunds as {{ dbt.type_bigint() }}) as n_refunds,

        -- Windows over the last N days (D - N + 1 .. D)
        {%- for n in windows %}
        cast(joined.revenue_{{ n }}d as {{ ltv_type_double() }}) as revenue_{{ n }}d,
        cast(joined.orders_{{ n }}d as {{ dbt.type_bigint() }}) as orders_{{ n }}d,
        {%- endfor %}

        -- Rhythm and trend
        {{ ltv_ratio('joined.interval_sum', 'joined.interval_count') }} as interpurchase_mean_days,
        {{ ltv_sample_std('joined.interval_count', 'joined.interval_sum', 'joined.interval_sum_squares') }}
            as interpurchase_std_days,
        cast(joined.decayed_revenue as {{ ltv_type_double() }}) as decayed_revenue,
        cast(joined.revenue_prev_90d as {{ ltv_type_double() }}) as revenue_prev_90d,
        coalesce(
            (joined.revenue_90d - joined.revenue_prev_90d)
                / nullif(abs(joined.revenue_90d) + abs(joined.revenue_prev_90d), 0),
            0
        ) as revenue_trend_90d,

        -- Refunds and margin
        {{ ltv_ratio('joined.n_refunds', 'joined.n_orders') }} as refund_rate,
        {{ ltv_ratio('joined.refund_amount', 'joined.gross_revenue') }} as refund_amount_share,
        {{ ltv_ratio('joined.margin', 'joined.revenue') }} as margin_share,

        -- Diversity and timing
        cast(joined.n_channels as {{ dbt.type_bigint() }}) as n_channels,
        cast(joined.n_skus as {{ dbt.type_bigint() }}) as n_skus,
        {{ ltv_ratio('joined.orders_weekday_6 + joined.orders_weekday_7', 'joined.n_orders') }}
            as weekend_order_share,
        {{ ltv_argmax(
            ['joined.orders_weekday_1', 'joined.orders_weekday_2', 'joined.orders_weekday_3',
             'joined.orders_weekday_4', 'joined.orders_weekday_5', 'joined.orders_weekday_6',
             'joined.orders_weekday_7'],
            ['1', '2', '3', '4', '5', '6', '7']) }} as top_weekday,
        {{ ltv_argmax(
            ['joined.orders_winter', 'joined.orders_spring', 'joined.orders_summer',
             'joined.orders_autumn'],
            ["'winter'", "'spring'", "'summer'", "'autumn'"]) }} as top_season,

        -- Behaviour (events)
        {%- for n in event_windows %}
        cast(joined.sessions_{{ n }}d as {{ dbt.type_bigint() }}) as sessions_{{ n }}d,
        cast(joined.product_views_{{ n }}d as {{ dbt.type_bigint() }}) as product_views_{{ n }}d,
        cast(joined.cart_adds_{{ n }}d as {{ dbt.type_bigint() }}) as cart_adds_{{ n }}d,
        cast(joined.checkouts_{{ n }}d as {{ dbt.type_bigint() }}) as checkouts_{{ n }}d,
        cast(joined.abandoned_cart_days_{{ n }}d as {{ dbt.type_bigint() }})
            as abandoned_cart_days_{{ n }}d,
        {{ ltv_ratio('joined.abandoned_cart_days_' ~ n ~ 'd', 'joined.cart_add_days_' ~ n ~ 'd') }}
            as cart_abandonment_rate_{{ n }}d,
        {%- endfor %}
        cast(joined.n_events as {{ dbt.type_bigint() }}) as n_events,
        {{ dbt.datediff('joined.last_event_date', 'joined.cutoff_date', 'day') }}
            as days_since_last_event,

        -- User attributes
        joined.country,
        joined.device,
        joined.acquisition_source,
        cast(
            {{ dbt.date_trunc('month', 'coalesce(joined.signup_date, joined.first_purchase_date)') }}
            as date
        ) as signup_cohort,

        -- Leakage gate: the latest source timestamp any of this row's values came from.
        {{ ltv_greatest_non_null(['joined.last_activity_ts', 'joined.signup_ts', 'joined.first_transaction_ts']) }}
            as max_source_ts
    from joined

)

select * from final
