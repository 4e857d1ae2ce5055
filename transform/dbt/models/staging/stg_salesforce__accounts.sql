-- Salesforce accounts as pg-replicate keeps them: a row deleted in Salesforce (isdeleted, the
-- recycle bin) or gone from Heroku Connect (_deleted_at, found by pg-replicate's
-- reconciliation) is deleted here.
select
    sfid as account_id,
    name as account_name,
    type as account_type,
    industry,
    coalesce(isdeleted, false) or _deleted_at is not null as is_deleted,
    systemmodstamp as modified_at,
    _replicated_at as replicated_at
from {{ source('orgm', 'account') }}
where sfid is not null
