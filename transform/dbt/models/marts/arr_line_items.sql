-- The line items that make ARR: those of won opportunities of live accounts, none deleted
-- (in Salesforce or at the source), each with its annualised value: its total price over the
-- days its subscription runs, times 365.
select
    li.line_item_id,
    o.account_id,
    a.account_name,
    li.start_date,
    li.end_date,
    li.total_price * 365.0 / ({{ dbt.datediff('li.start_date', 'li.end_date', 'day') }} + 1) as annual_value
from {{ ref('stg_salesforce__opportunity_line_items') }} as li
inner join {{ ref('stg_salesforce__opportunities') }} as o
    on o.opportunity_id = li.opportunity_id and o.is_won and not o.is_deleted
inner join {{ ref('stg_salesforce__accounts') }} as a
    on a.account_id = o.account_id and not a.is_deleted
where not li.is_deleted
  and li.start_date is not null
  and li.end_date >= li.start_date
