with

transactions as (

    select * from {{ ref('stg_raw__transactions') }}

),

purchases as (

    select
        transactions.user_id,
        transactions.transaction_date,
        transactions.ts,
        transactions.channel,
        transactions.sku
    from transactions
    where not transactions.is_refund

),

dimension_values as (

    select
        purchases.user_id,
        'channel' as dimension,
        purchases.channel as dimension_value,
        purchases.transaction_date,
        purchases.ts
    from purchases
    where purchases.channel is not null

    union all

    select
        purchases.user_id,
        'sku' as dimension,
        purchases.sku as dimension_value,
        purchases.transaction_date,
        purchases.ts
    from purchases
    where purchases.sku is not null

),

final as (

    select
        dimension_values.user_id,
        dimension_values.dimension,
        dimension_values.dimension_value,
        min(dimension_values.transaction_date) as first_seen_date,
        min(dimension_values.ts) as first_seen_ts
    from dimension_values
    group by
        dimension_values.user_id,
        dimension_values.dimension,
        dimension_values.dimension_value

)

select * from final
