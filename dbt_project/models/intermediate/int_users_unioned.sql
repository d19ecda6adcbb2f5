with

users as (

    select * from {{ ref('stg_raw__users') }}

),

transactions as (

    select * from {{ ref('stg_raw__transactions') }}

),

user_days as (

    select * from {{ ref('int_user_days_aggregated') }}

),

activity as (

    select
        user_days.user_id,
        min(user_days.activity_date) as first_activity_date,
        min(case when user_days.is_purchase_day then user_days.activity_date end)
            as first_purchase_date
    from user_days
    group by user_days.user_id

),

first_transactions as (

    -- The user's first transaction line ever: its country is an attribute known from then on.
    select
        transactions.user_id,
        transactions.ts as first_transaction_ts,
        transactions.country as first_transaction_country,
        row_number() over (
            partition by transactions.user_id
            order by transactions.ts, transactions._batch_id, transactions._row
        ) as transaction_rank
    from transactions

),

user_ids as (

    select users.user_id from users
    union
    select activity.user_id from activity

),

final as (

    select
        user_ids.user_id,
        users.user_id is not null as is_in_users_table,
        users.signup_ts,
        users.signup_date,
        users.country,
        users.device,
        users.acquisition_source,
        activity.first_activity_date,
        activity.first_purchase_date,
        first_transactions.first_transaction_ts,
        first_transactions.first_transaction_country,
        cast(
            {{ dbt.date_trunc('month', 'coalesce(users.signup_date, activity.first_purchase_date, activity.first_activity_date)') }}
            as date
        ) as cohort_month
    from user_ids
    left join users
        on user_ids.user_id = users.user_id
    left join activity
        on user_ids.user_id = activity.user_id
    left join first_transactions
        on user_ids.user_id = first_transactions.user_id
        and first_transactions.transaction_rank = 1

)

select * from final
