with

users as (

    select * from {{ source('raw', 'users') }}

),

numbered as (

    -- A user given twice keeps the last loaded row (later loads correct earlier ones).
    select
        users.*,
        row_number() over (
            partition by users.user_id
            order by users._batch_id desc, users._row desc
        ) as recency_rank
    from users

),

final as (

    select
        numbered.user_id,
        numbered.signup_ts,
        cast(numbered.signup_ts as date) as signup_date,
        numbered.country,
        numbered.device,
        numbered.acquisition_source
    from numbered
    where numbered.recency_rank = 1

)

select * from final
