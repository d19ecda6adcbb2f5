with

transactions as (

    select * from {{ source('raw', 'transactions') }}

),

fx_rates as (

    select * from {{ ref('stg_raw__fx_rates') }}

),

numbered as (

    -- Rows sharing a transaction_id are lines of one transaction (an order's items, a
    -- purchase and its refund). A line loaded twice, equal in every contract column, counts
    -- once (the first loaded row wins); rows without an id are never duplicates.
    select
        transactions.*,
        row_number() over (
            partition by
                transactions.transaction_id,
                transactions.user_id,
                transactions.ts,
                transactions.amount,
                coalesce(upper(trim(transactions.currency)), '{{ var("base_currency") }}'),
                coalesce(transactions.is_refund, false),
                transactions.variable_cost,
                transactions.channel,
                transactions.sku,
                transactions.country
            order by transactions._batch_id, transactions._row
        ) as duplicate_rank
    from transactions

),

deduplicated as (

    select
        numbered.transaction_id,
        numbered.user_id,
        numbered.ts,
        cast(numbered.ts as date) as transaction_date,
        coalesce(upper(trim(numbered.currency)), '{{ var("base_currency") }}') as currency,
        coalesce(numbered.is_refund, false) as is_refund,
        numbered.amount,
        numbered.variable_cost,
        numbered.channel,
        numbered.sku,
        numbered.country,
        numbered._batch_id,
        numbered._row
    from numbered
    where numbered.transaction_id is null or numbered.duplicate_rank = 1

),

converted as (

    select
        deduplicated.*,
        case
            when deduplicated.currency = '{{ var("base_currency") }}' then 1.0
            else rates.rate_to_base
        end as rate_to_base
    from deduplicated
    {{ ltv_asof_left_join(
        'fx_rates', 'rates', 'deduplicated.currency', 'currency',
        'deduplicated.transaction_date', 'valid_from', 'valid_to') }}

),

final as (

    select
        converted.transaction_id,
        converted.user_id,
        converted.ts,
        converted.transaction_date,
        converted.currency,
        converted.is_refund,
        converted.amount,
        converted.variable_cost,
        converted.rate_to_base,
        -- Null when the currency has no rate on or before the transaction date: the
        -- not_null test on amount_base fails the build rather than losing the row's value.
        converted.amount * converted.rate_to_base as amount_base,
        (converted.amount - coalesce(converted.variable_cost, 0)) * converted.rate_to_base
            as margin_base,
        case when converted.is_refund then -1 else 1 end
            * converted.amount * converted.rate_to_base as net_amount_base,
        case when converted.is_refund then -1 else 1 end
            * (converted.amount - coalesce(converted.variable_cost, 0))
            * converted.rate_to_base as net_margin_base,
        converted.channel,
        converted.sku,
        converted.country,
        converted._batch_id,
        converted._row
    from converted

)

select * from final
