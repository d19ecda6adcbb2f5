-- The BTYD summary holds exactly the purchasers of customer_features at each cutoff, with
-- the same frequency (purchase days - 1) and first/last purchase days. Only the cutoffs this
-- build writes are read (macros/cutoffs.sql, get_where_subquery).
with

features as (

    select user_id, cutoff_date, frequency, first_purchase_date, last_purchase_date
    from {{ ref('customer_features') }}
    where not is_cold_start and {{ ltv_cutoffs_being_built() }}

),

summary as (

    select user_id, cutoff_date, frequency, first_purchase_date, last_purchase_date
    from {{ ref('customer_btyd_summary') }}
    where {{ ltv_cutoffs_being_built() }}

),

final as (

    select
        coalesce(features.user_id, summary.user_id) as user_id,
        coalesce(features.cutoff_date, summary.cutoff_date) as cutoff_date,
        features.frequency as features_frequency,
        summary.frequency as summary_frequency
    from features
    full outer join summary
        on features.user_id = summary.user_id
        and features.cutoff_date = summary.cutoff_date
    where features.user_id is null
        or summary.user_id is null
        or features.frequency <> summary.frequency
        or features.first_purchase_date <> summary.first_purchase_date
        or features.last_purchase_date <> summary.last_purchase_date

)

select * from final
