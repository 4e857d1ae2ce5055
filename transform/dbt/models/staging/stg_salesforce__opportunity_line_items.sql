-- Line items; start_date__c and end_date__c are the subscription the line sells.
select
    sfid as line_item_id,
    opportunityid as opportunity_id,
    product2id as product_id,
    name as line_item_name,
    quantity,
    unitprice as unit_price,
    totalprice as total_price,
    start_date__c as start_date,
    end_date__c as end_date,
    coalesce(isdeleted, false) or _deleted_at is not null as is_deleted,
    systemmodstamp as modified_at
from {{ source('orgm', 'opportunitylineitem') }}
where sfid is not null
