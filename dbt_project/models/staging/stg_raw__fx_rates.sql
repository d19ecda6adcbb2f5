with

fx_rates as (

    select * from {{ source('raw', 'fx_rates') }}

),

numbered as (

    select
        cast(fx_rates.{{ adapter.quote('date') }} as date) as valid_from,
        upper(trim(fx_rates.currency)) as currency,
        fx_rates.rate_to_base,
        row_number() over (
            partition by fx_rates.{{ adapter.quote('date') }}, upper(trim(fx_rates.currency))
            order by fx_rates._batch_id desc, fx_rates._row desc
        ) as recency_rank
    from fx_rates
    where fx_rates.rate_to_base is not null

),

deduplicated as (

    select
        numbered.valid_from,
        numbered.currency,
        numbered.rate_to_base
    from numbered
    where numbered.recency_rank = 1

),

final as (

    select
        deduplicated.currency,
        deduplicated.valid_from,
        coalesce(
            lead(deduplicated.valid_from) over (
                partition by deduplicated.currency order by deduplicated.valid_from
            ),
            {{ dbt.date(9999, 12, 31) }}
        ) as valid_to,
        deduplicated.rate_to_base
    from deduplicated

)

select * from final
