-- The licenses as they stand now: the rows of the latest nightly export, one per license, with
-- whether the license covers that night.
with latest as (
    select max(export_date) as export_date
    from {{ ref('stg_licenses') }}
)

select
    l.license_id,
    l.customer_id,
    l.company_name,
    l.sku,
    l.edition,
    l.seats,
    l.is_trial,
    l.issued_at,
    l.starts_at,
    l.expires_at,
    l.starts_at <= l.export_date and l.expires_at >= l.export_date as is_active,
    l.export_date
from {{ ref('stg_licenses') }} as l
inner join latest on l.export_date = latest.export_date
