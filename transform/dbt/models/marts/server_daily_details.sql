-- One row per server per day: the server's last ping of the day, and how many it sent.
-- Incremental on the day: a daily run rebuilds the last built day and the lookback before it
-- (late log files), nothing older.
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['day', 'server_id'],
    )
}}

with pings as (
    select *
    from {{ ref('stg_diagnostics_pings') }}
    where server_id is not null
    {%- if is_incremental() %}
      and log_date >= (select {{ dbt.dateadd('day', -var('lookback_days'), 'max(day)') }} from {{ this }})
    {%- endif %}
),

ranked as (
    select
        *,
        row_number() over (
            partition by log_date, server_id order by log_time desc, edge_request_id desc
        ) as newest_first,
        count(*) over (partition by log_date, server_id) as pings
    from pings
)

select
    log_date as day,
    server_id,
    server_version,
    build,
    edition,
    database_type,
    operating_system,
    active_users,
    total_users,
    teams,
    pings
from ranked
where newest_first = 1
