{#- Small SQL builders shared by the marts (portable SQL only). -#}


{#- Sample standard deviation from a count, a sum and a sum of squares: lets any window's
    std be aggregated from per-day partial sums. Null below two observations. -#}
{% macro ltv_sample_std(n, total, sum_squares) -%}
    case
        when {{ n }} > 1 then sqrt(greatest(
            0,
            (cast({{ sum_squares }} as {{ ltv_type_double() }})
                - cast({{ total }} as {{ ltv_type_double() }}) * {{ total }} / {{ n }})
            / ({{ n }} - 1)
        ))
    end
{%- endmacro %}


{#- sum(expr) as a double that does not depend on the order rows are added in: each term is
    rounded to 6 decimals and summed exactly as a decimal. A parallel engine adds doubles in
    whatever order its threads finish, so a plain sum differs in the last bits from run to run;
    a tree model splitting near such a value (a revenue trend that should be 0) then gives a
    different forecast for the same data. Every money sum in the models uses this. -#}
{% macro ltv_exact_sum(expr) -%}
    cast(sum(cast({{ expr }} as decimal(38, 6))) as {{ ltv_type_double() }})
{%- endmacro %}


{#- a / b as a double, null when b is 0 or null. -#}
{% macro ltv_ratio(numerator, denominator) -%}
    (cast({{ numerator }} as {{ ltv_type_double() }}) / nullif({{ denominator }}, 0))
{%- endmacro %}


{#- The label of the largest of several non-null counts (the first label on ties); null
    when all are 0. -#}
{% macro ltv_argmax(columns, labels) -%}
    {%- set top = "greatest(" ~ (columns | join(", ")) ~ ")" -%}
    case
        when {{ top }} <= 0 then null
        {%- for column in columns %}
        when {{ column }} = {{ top }} then {{ labels[loop.index0] }}
        {%- endfor %}
    end
{%- endmacro %}
