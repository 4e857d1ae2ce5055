-- The servers' daily pings to securityupdatecheck (CloudFront logs of the diagnostics
-- distributions): the query string carries the server's telemetry, parsed here.
--   id  server id          v   server version       b  build      be  enterprise-ready build
--   db  database           os  operating system     uc total users   auc active users   tc teams
-- A count that is not a number is NULL (TRY_CAST, on DuckDB as on Snowflake, from text).
select
    log_date,
    log_time,
    {{ query_param('uri_query', 'id') }} as server_id,
    {{ query_param('uri_query', 'v') }} as server_version,
    {{ query_param('uri_query', 'b') }} as build,
    case {{ query_param('uri_query', 'be') }}
        when 'true' then 'enterprise'
        when 'false' then 'team'
    end as edition,
    {{ query_param('uri_query', 'db') }} as database_type,
    {{ query_param('uri_query', 'os') }} as operating_system,
    try_cast({{ query_param('uri_query', 'auc') }} as bigint) as active_users,
    try_cast({{ query_param('uri_query', 'uc') }} as bigint) as total_users,
    try_cast({{ query_param('uri_query', 'tc') }} as bigint) as teams,
    {{ url_decode('user_agent') }} as user_agent,
    client_ip,
    edge_location,
    edge_request_id,
    _source_file as source_file
from {{ source('diagnostics', 'log_entries') }}
where uri_stem = '/security'
  and status = 200
