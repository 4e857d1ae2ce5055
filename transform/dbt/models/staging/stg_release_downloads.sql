-- Requests for server release archives (CloudFront logs of releases.mattermost.com). The path is
-- /<version>/mattermost-<version>-<os>-<arch>.tar.gz; a 200 is a download, a 304 a client
-- that had the file already.
select
    log_date,
    log_time,
    {{ regex_group('uri_stem', '^/([^/]+)/', 1) }} as server_version,
    {{ regex_group('uri_stem', '-(linux|windows|darwin|osx)-([a-z0-9_]+)[.]', 1) }} as operating_system,
    {{ regex_group('uri_stem', '-(linux|windows|darwin|osx)-([a-z0-9_]+)[.]', 2) }} as architecture,
    uri_stem as path,
    status,
    sc_bytes as bytes_sent,
    {{ url_decode('user_agent') }} as user_agent,
    client_ip,
    edge_request_id,
    _source_file as source_file
from {{ source('releases', 'log_entries') }}
