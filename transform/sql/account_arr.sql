-- Daily ARR per account, first step of the hourly chain
-- (account-arr >> opportunity-snapshot >> opportunitylineitem-snapshot).
--
-- ARR is the annualised value of every line item of a won opportunity whose subscription covers
-- the snapshot date: totalprice * 365 / (days the subscription runs). Deleted rows (Heroku
-- Connect keeps them with isdeleted) never count. Each run rewrites today's rows, so hourly runs
-- keep one row per account and day and a rerun changes nothing.

CREATE SCHEMA IF NOT EXISTS reporting;

CREATE TABLE IF NOT EXISTS reporting.account_arr (
    snapshot_date date NOT NULL,
    account_sfid varchar(18) NOT NULL,
    account_name text,
    arr numeric(14, 2) NOT NULL,
    active_lines integer NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (snapshot_date, account_sfid)
);

COMMENT ON TABLE reporting.account_arr IS
    'ARR per account and day; rebuilt hourly by pg-job account-arr (transform/sql/account_arr.sql)';

DELETE FROM reporting.account_arr WHERE snapshot_date = current_date;

INSERT INTO reporting.account_arr (snapshot_date, account_sfid, account_name, arr, active_lines)
SELECT current_date,
       a.sfid,
       a.name,
       round(sum(oli.totalprice * 365.0 / (oli.end_date__c - oli.start_date__c + 1))::numeric, 2),
       count(*)
FROM salesforce.opportunitylineitem AS oli
JOIN salesforce.opportunity AS o ON o.sfid = oli.opportunityid AND o.iswon AND NOT o.isdeleted
JOIN salesforce.account AS a ON a.sfid = o.accountid AND NOT a.isdeleted
WHERE NOT oli.isdeleted
  AND oli.start_date__c <= current_date
  AND oli.end_date__c >= current_date
GROUP BY a.sfid, a.name;
