-- One row per license per daily export: every nightly export lists every license as it stands
-- that night, so the export's date (from its file name) says which rows are current.
select
    license_id,
    customer_id,
    company_name,
    contact_email,
    sku,
    edition,
    seats,
    is_trial,
    issued_at,
    starts_at,
    expires_at,
    features,
    cast({{ regex_group('_source_file', '([0-9]{4}-[0-9]{2}-[0-9]{2})[.]csv$', 1) }} as date) as export_date,
    _source_file as source_file,
    _loaded_at as loaded_at
from {{ source('licenses', 'licenses') }}
