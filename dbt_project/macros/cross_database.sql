{#- Engine-specific SQL lives here, behind adapter.dispatch; models call these macros and
    dbt's own cross-database macros (dbt.dateadd, dbt.datediff, dbt.date_trunc, ...).
    default__ is portable SQL; duckdb__ is the faster native form. -#}


{#- ISO day of week of a date: 1 = Monday ... 7 = Sunday. -#}
{% macro ltv_iso_weekday(date_expr) -%}
    {{ return(adapter.dispatch('ltv_iso_weekday')(date_expr)) }}
{%- endmacro %}

{% macro default__ltv_iso_weekday(date_expr) -%}
    cast(extract(isodow from {{ date_expr }}) as {{ dbt.type_int() }})
{%- endmacro %}

{% macro duckdb__ltv_iso_weekday(date_expr) -%}
    isodow({{ date_expr }})
{%- endmacro %}

{% macro snowflake__ltv_iso_weekday(date_expr) -%}
    dayofweekiso({{ date_expr }})
{%- endmacro %}

{% macro bigquery__ltv_iso_weekday(date_expr) -%}
    (mod(extract(dayofweek from {{ date_expr }}) + 5, 7) + 1)
{%- endmacro %}


{#- The largest non-null argument (null when all are null). Postgres and DuckDB's greatest()
    already skip nulls; elsewhere greatest() returns null if any argument is null. -#}
{% macro ltv_greatest_non_null(exprs) -%}
    {{ return(adapter.dispatch('ltv_greatest_non_null')(exprs)) }}
{%- endmacro %}

{% macro default__ltv_greatest_non_null(exprs) -%}
    {%- set floor = "cast('0001-01-01 00:00:00' as " ~ dbt.type_timestamp() ~ ")" -%}
    nullif(greatest(
        {%- for e in exprs -%}
            coalesce({{ e }}, {{ floor }}){{ ", " if not loop.last }}
        {%- endfor -%}
    ), {{ floor }})
{%- endmacro %}

{% macro duckdb__ltv_greatest_non_null(exprs) -%}
    greatest({{ exprs | join(', ') }})
{%- endmacro %}

{% macro postgres__ltv_greatest_non_null(exprs) -%}
    greatest({{ exprs | join(', ') }})
{%- endmacro %}


{#- Left join to the row of a validity-interval table in force at a date: the latest row of
    `relation` with the same key whose valid_from <= left date (intervals are [valid_from,
    valid_to), valid_to of the last row far in the future). Portable form: a range join; DuckDB
    uses its ASOF join, which does not compare every pair. -#}
{% macro ltv_asof_left_join(relation, alias, left_key, right_key, left_date, valid_from, valid_to) -%}
    {{ return(adapter.dispatch('ltv_asof_left_join')(
        relation, alias, left_key, right_key, left_date, valid_from, valid_to)) }}
{%- endmacro %}

{% macro default__ltv_asof_left_join(relation, alias, left_key, right_key, left_date, valid_from, valid_to) -%}
    left join {{ relation }} as {{ alias }}
        on {{ left_key }} = {{ alias }}.{{ right_key }}
        and {{ left_date }} >= {{ alias }}.{{ valid_from }}
        and {{ left_date }} < {{ alias }}.{{ valid_to }}
{%- endmacro %}

{% macro duckdb__ltv_asof_left_join(relation, alias, left_key, right_key, left_date, valid_from, valid_to) -%}
    asof left join {{ relation }} as {{ alias }}
        on {{ left_key }} = {{ alias }}.{{ right_key }}
        and {{ left_date }} >= {{ alias }}.{{ valid_from }}
{%- endmacro %}


{#- Season of a month number (meteorological, northern hemisphere). -#}
{% macro ltv_season(month_expr) -%}
    case
        when {{ month_expr }} in (12, 1, 2) then 'winter'
        when {{ month_expr }} in (3, 4, 5) then 'spring'
        when {{ month_expr }} in (6, 7, 8) then 'summer'
        else 'autumn'
    end
{%- endmacro %}


{#- An 8-byte float (dbt.type_float() is a 4-byte REAL on DuckDB). -#}
{% macro ltv_type_double() -%}
    {{ return(adapter.dispatch('ltv_type_double')()) }}
{%- endmacro %}

{% macro default__ltv_type_double() -%}
    double precision
{%- endmacro %}

{% macro duckdb__ltv_type_double() -%}
    double
{%- endmacro %}

{% macro bigquery__ltv_type_double() -%}
    float64
{%- endmacro %}
