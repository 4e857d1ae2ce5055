-- Active servers (those that pinged that day) and their users, per day.
select
    day,
    count(*) as active_servers,
    sum(active_users) as active_users,
    sum(total_users) as total_users
from {{ ref('server_daily_details') }}
group by day
