-- ARR per account per day, over the last arr_history_days days up to today: the sum of the
-- annualised values of the account's line items whose subscription covers the day. An account
-- with no such line that day has no row.
{%- set today = var('arr_as_of', none) %}
{%- set today = "cast('" ~ today ~ "' as date)" if today else 'current_date' %}

with days as (
    {{ dbt.date_spine(
        'day',
        dbt.dateadd('day', -(var('arr_history_days') - 1), today),
        dbt.dateadd('day', 1, today),
    ) }}
)

select
    cast(d.date_day as date) as day,
    l.account_id,
    l.account_name,
    cast(round(sum(l.annual_value), 2) as decimal(18, 2)) as arr,
    count(*) as active_lines
from days as d
inner join {{ ref('arr_line_items') }} as l
    on cast(d.date_day as date) between l.start_date and l.end_date
group by 1, 2, 3
