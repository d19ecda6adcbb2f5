with

transactions as (

    select * from {{ ref('stg_raw__transactions') }}

),

events as (

    select * from {{ ref('stg_raw__events') }}

),

orders as (

    -- One row per order (or refund) and day: the lines sharing a transaction_id summed. A row
    -- without an id is an order of its own.
    select
        transactions.user_id,
        transactions.transaction_date,
        transactions.is_refund,
        {{ ltv_exact_sum('transactions.amount_base') }} as amount_base,
        {{ ltv_exact_sum('transactions.net_amount_base') }} as net_amount_base,
        {{ ltv_exact_sum('transactions.net_margin_base') }} as net_margin_base,
        min(transactions.ts) as first_ts,
        max(transactions.ts) as last_ts
    from transactions
    group by
        transactions.user_id,
        transactions.transaction_date,
        transactions.is_refund,
        transactions.transaction_id,
        case when transactions.transaction_id is null then transactions._batch_id end,
        case when transactions.transaction_id is null then transactions._row end

),

transaction_days as (

    select
        orders.user_id,
        orders.transaction_date as activity_date,
        sum(case when orders.is_refund then 0 else 1 end) as n_orders,
        sum(case when orders.is_refund then 1 else 0 end) as n_refunds,
        {{ ltv_exact_sum('case when orders.is_refund then 0 else orders.amount_base end') }}
            as gross_revenue,
        {{ ltv_exact_sum('case when orders.is_refund then orders.amount_base else 0 end') }}
            as refund_amount,
        {{ ltv_exact_sum('orders.net_amount_base') }} as revenue,
        {{ ltv_exact_sum('orders.net_margin_base') }} as margin,
        {{ ltv_exact_sum(
            'case when orders.is_refund then 0 else orders.amount_base * orders.amount_base end'
        ) }} as order_value_sum_squares,
        max(case when orders.is_refund then null else orders.amount_base end) as order_value_max,
        min(orders.first_ts) as transaction_first_ts,
        max(orders.last_ts) as transaction_last_ts
    from orders
    group by orders.user_id, orders.transaction_date

),

event_days as (

    select
        events.user_id,
        events.event_date as activity_date,
        sum(case when events.event_name = 'session_start' then 1 else 0 end) as n_sessions,
        sum(case when events.event_name = 'product_view' then 1 else 0 end) as n_product_views,
        sum(case when events.event_name = 'add_to_cart' then 1 else 0 end) as n_cart_adds,
        sum(case when events.event_name = 'checkout_start' then 1 else 0 end) as n_checkouts,
        count(*) as n_events,
        max(events.ts) as event_last_ts
    from events
    group by events.user_id, events.event_date

),

combined as (

    select
        coalesce(transaction_days.user_id, event_days.user_id) as user_id,
        coalesce(transaction_days.activity_date, event_days.activity_date) as activity_date,
        coalesce(transaction_days.n_orders, 0) as n_orders,
        coalesce(transaction_days.n_refunds, 0) as n_refunds,
        coalesce(transaction_days.gross_revenue, 0) as gross_revenue,
        coalesce(transaction_days.refund_amount, 0) as refund_amount,
        coalesce(transaction_days.revenue, 0) as revenue,
        coalesce(transaction_days.margin, 0) as margin,
        coalesce(transaction_days.order_value_sum_squares, 0) as order_value_sum_squares,
        transaction_days.order_value_max,
        transaction_days.transaction_first_ts,
        transaction_days.transaction_last_ts,
        coalesce(event_days.n_sessions, 0) as n_sessions,
        coalesce(event_days.n_product_views, 0) as n_product_views,
        coalesce(event_days.n_cart_adds, 0) as n_cart_adds,
        coalesce(event_days.n_checkouts, 0) as n_checkouts,
        coalesce(event_days.n_events, 0) as n_events,
        event_days.event_last_ts
    from transaction_days
    full outer join event_days
        on transaction_days.user_id = event_days.user_id
        and transaction_days.activity_date = event_days.activity_date

),

purchase_days as (

    -- A purchase day has at least one non-refund transaction (whatever its value).
    select
        combined.user_id,
        combined.activity_date,
        lag(combined.activity_date) over (
            partition by combined.user_id order by combined.activity_date
        ) as previous_purchase_date,
        row_number() over (
            partition by combined.user_id order by combined.activity_date
        ) as purchase_day_number
    from combined
    where combined.n_orders > 0

),

final as (

    select
        combined.user_id,
        combined.activity_date,
        cast(combined.n_orders as {{ dbt.type_bigint() }}) as n_orders,
        cast(combined.n_refunds as {{ dbt.type_bigint() }}) as n_refunds,
        combined.gross_revenue,
        combined.refund_amount,
        combined.revenue,
        combined.margin,
        combined.order_value_sum_squares,
        combined.order_value_max,
        combined.n_orders > 0 as is_purchase_day,
        coalesce(purchase_days.purchase_day_number = 1, false) as is_first_purchase_day,
        {{ dbt.datediff('purchase_days.previous_purchase_date', 'combined.activity_date', 'day') }}
            as days_since_previous_purchase,
        cast(combined.n_sessions as {{ dbt.type_bigint() }}) as n_sessions,
        cast(combined.n_product_views as {{ dbt.type_bigint() }}) as n_product_views,
        cast(combined.n_cart_adds as {{ dbt.type_bigint() }}) as n_cart_adds,
        cast(combined.n_checkouts as {{ dbt.type_bigint() }}) as n_checkouts,
        cast(combined.n_events as {{ dbt.type_bigint() }}) as n_events,
        combined.n_cart_adds > 0 and combined.n_orders = 0 as is_abandoned_cart_day,
        {{ ltv_iso_weekday('combined.activity_date') }} as iso_weekday,
        {{ ltv_season('extract(month from combined.activity_date)') }} as season,
        combined.transaction_first_ts,
        combined.transaction_last_ts,
        combined.event_last_ts,
        {{ ltv_greatest_non_null(['combined.transaction_last_ts', 'combined.event_last_ts']) }}
            as last_ts
    from combined
    left join purchase_days
        on combined.user_id = purchase_days.user_id
        and combined.activity_date = purchase_days.activity_date

)

select * from final
