-- Server release downloads per version per day (a 304 is a client that had the file).
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['day', 'server_version'],
    )
}}

select
    log_date as day,
    server_version,
    sum(case when status = 200 then 1 else 0 end) as downloads,
    sum(case when status = 304 then 1 else 0 end) as not_modified,
    sum(case when status >= 400 then 1 else 0 end) as failed
from {{ ref('stg_release_downloads') }}
where server_version is not null
{%- if is_incremental() %}
  and log_date >= (select {{ dbt.dateadd('day', -var('lookback_days'), 'max(day)') }} from {{ this }})
{%- endif %}
group by 1, 2
