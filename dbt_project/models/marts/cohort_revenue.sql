with

user_days as (

    select * from {{ ref('int_user_days_aggregated') }}

),

users as (

    select * from {{ ref('int_users_unioned') }}

),

transaction_days as (

    select
        users.cohort_month,
        user_days.activity_date,
        user_days.user_id,
        user_days.n_orders,
        user_days.n_refunds,
        user_days.revenue,
        user_days.margin
    from user_days
    inner join users
        on user_days.user_id = users.user_id
    where user_days.transaction_last_ts is not null

),

final as (

    select
        transaction_days.cohort_month,
        transaction_days.activity_date,
        {{ dbt.datediff('transaction_days.cohort_month', 'transaction_days.activity_date', 'day') }}
            as days_since_cohort_start,
        cast(count(*) as {{ dbt.type_bigint() }}) as n_active_users,
        cast(
            sum(case when transaction_days.n_orders > 0 then 1 else 0 end)
            as {{ dbt.type_bigint() }}
        ) as n_purchasing_users,
        cast(sum(transaction_days.n_orders) as {{ dbt.type_bigint() }}) as n_orders,
        cast(sum(transaction_days.n_refunds) as {{ dbt.type_bigint() }}) as n_refunds,
        {{ ltv_exact_sum('transaction_days.revenue') }} as revenue,
        {{ ltv_exact_sum('transaction_days.margin') }} as margin
    from transaction_days
    group by transaction_days.cohort_month, transaction_days.activity_date

)

select * from final
