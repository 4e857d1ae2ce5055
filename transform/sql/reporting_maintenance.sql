-- pg-job: no-transaction
--
-- Upkeep of the reporting tables the hourly chain fills: indexes for the dashboards' lookups by
-- account, built without blocking the hourly writes (CONCURRENTLY), then fresh statistics.
-- Neither can run inside a transaction block, hence the directive above: each statement
-- commits on its own, and a failure leaves the earlier ones applied (each is safe to rerun).

CREATE INDEX CONCURRENTLY IF NOT EXISTS account_arr_account_idx
    ON reporting.account_arr (account_sfid, snapshot_date);

CREATE INDEX CONCURRENTLY IF NOT EXISTS opportunity_snapshot_account_idx
    ON reporting.opportunity_snapshot (account_sfid, snapshot_date);

VACUUM (ANALYZE) reporting.account_arr;
VACUUM (ANALYZE) reporting.opportunity_snapshot;
VACUUM (ANALYZE) reporting.opportunitylineitem_snapshot;
