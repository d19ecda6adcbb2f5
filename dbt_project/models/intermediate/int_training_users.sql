{#- The customers models learn from at training cutoffs and backtest origins: all known users
    when there are at most var('train_max_users') of them, else that many, chosen by the md5 of
    the user id (a fixed, behaviour-blind sample: the same users on every run and for every
    cutoff, so features, labels and BTYD summaries of a cutoff cover the same customers).
    The scoring date (and every daily scoring partition) always covers everyone: only what
    the models are fitted and backtested on is sampled. Why: at 1M users the training marts
    held ~11 cutoffs x 1M rows and `ltv predict` peaked at 6.7 GB at 300k users; the
    LightGBM family keeps at most 250k rows anyway and BTYD's four parameters do not need
    a million customers. -#}
{%- set cap = var('train_max_users') | int -%}
{%- if cap <= 0 -%}
    {{ exceptions.raise_compiler_error("train_max_users must be a positive integer, got "
        ~ (var('train_max_users') | string)) }}
{%- endif -%}

with

users as (

    select user_id from {{ ref('int_users_unioned') }}

),

ranked as (

    select
        users.user_id,
        row_number() over (order by {{ dbt.hash('users.user_id') }}, users.user_id) as sample_rank
    from users

)

select ranked.user_id
from ranked
where ranked.sample_rank <= {{ cap }}
