-- customer_labels has a row for every customer_features row of each (cutoff, horizon) it
-- holds, and none for users outside the features of that cutoff. Only the cutoffs and label
-- window this build writes are read (macros/cutoffs.sql, get_where_subquery).
with

features as (

    select user_id, cutoff_date from {{ ref('customer_features') }}
    where {{ ltv_cutoffs_being_built() }}

),

labels as (

    select user_id, cutoff_date, horizon_days from {{ ref('customer_labels') }}
    where {{ ltv_cutoffs_being_built(by_horizon=true) }}

),

label_windows as (

    select distinct cutoff_date, horizon_days from labels

),

expected as (

    select features.user_id, features.cutoff_date, label_windows.horizon_days
    from features
    inner join label_windows
        on features.cutoff_date = label_windows.cutoff_date

),

final as (

    select
        coalesce(expected.user_id, labels.user_id) as user_id,
        coalesce(expected.cutoff_date, labels.cutoff_date) as cutoff_date,
        coalesce(expected.horizon_days, labels.horizon_days) as horizon_days,
        case when labels.user_id is null then 'missing label' else 'label without features' end
            as problem
    from expected
    full outer join labels
        on expected.user_id = labels.user_id
        and expected.cutoff_date = labels.cutoff_date
        and expected.horizon_days = labels.horizon_days
    where expected.user_id is null or labels.user_id is null

)

select * from final
