-- Push notifications sent through the proxy, per day, environment and platform.
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['day', 'environment', 'platform'],
    )
}}

select
    request_date as day,
    environment,
    coalesce(platform, 'unknown') as platform,
    count(*) as requests,
    sum(case when status >= 400 then 1 else 0 end) as failed
from {{ ref('stg_push_proxy_requests') }}
where path like '%/send_push'
{%- if is_incremental() %}
  and request_date >= (select {{ dbt.dateadd('day', -var('lookback_days'), 'max(day)') }} from {{ this }})
{%- endif %}
group by 1, 2, 3
