select
    sfid as opportunity_id,
    accountid as account_id,
    name as opportunity_name,
    type as opportunity_type,
    stagename as stage,
    amount,
    closedate as close_date,
    coalesce(isclosed, false) as is_closed,
    coalesce(iswon, false) as is_won,
    coalesce(isdeleted, false) or _deleted_at is not null as is_deleted,
    systemmodstamp as modified_at
from {{ source('orgm', 'opportunity') }}
where sfid is not null
