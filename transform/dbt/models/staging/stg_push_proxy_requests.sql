-- The push-notification proxy's requests, from the ELB access logs of its three load balancers.
-- The request line is `METHOD URL PROTOCOL`; the platform a push goes to (Apple's or Google's
-- service) is named in the client's user agent, or in the path.
{%- set load_balancers = [('logs', 'us'), ('test_logs', 'test'), ('de_logs', 'de')] %}

with requests as (
    {%- for table, environment in load_balancers %}
    select
        '{{ environment }}' as environment,
        request_time,
        elb,
        elb_status_code,
        backend_status_code,
        request,
        user_agent,
        received_bytes,
        sent_bytes,
        _source_file
    from {{ source('push_proxy', table) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
)

select
    environment,
    request_time,
    cast(request_time as date) as request_date,
    {{ dbt.split_part('request', "' '", 1) }} as method,
    {{ regex_group('request', '^[A-Z]+ [a-z]+://[^/ ]+(/[^ ?]*)', 1) }} as path,
    case
        when lower(user_agent) like '%(apple)%' or lower(request) like '%/apple%' then 'ios'
        when lower(user_agent) like '%(android)%' or lower(request) like '%/android%' then 'android'
    end as platform,
    elb_status_code as status,
    backend_status_code,
    received_bytes,
    sent_bytes,
    user_agent,
    _source_file as source_file
from requests
