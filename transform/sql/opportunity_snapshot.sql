-- Today's snapshot of every opportunity, second step of the hourly chain: stage, amount and the
-- fiscal quarter it closes in, so that pipeline can be compared day over day. Rewrites today's
-- rows only.

CREATE SCHEMA IF NOT EXISTS reporting;

-- The fiscal year starts on February 1st: FY2027 runs from 2026-02-01 to 2027-01-31.
CREATE OR REPLACE FUNCTION reporting.fiscal_quarter(day date) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $fiscal$
DECLARE
    -- Shifting back one month puts February 1st on January 1st; the quarter then falls out.
    shifted date := day - interval '1 month';
BEGIN
    RETURN format('FY%s-Q%s', extract(year FROM shifted)::int + 1, extract(quarter FROM shifted)::int);
END;
$fiscal$;

CREATE TABLE IF NOT EXISTS reporting.opportunity_snapshot (
    snapshot_date date NOT NULL,
    opportunity_sfid varchar(18) NOT NULL,
    account_sfid varchar(18),
    name text,
    type text,
    stagename text,
    amount numeric(14, 2),
    closedate date,
    fiscal_quarter text,
    is_closed boolean,
    is_won boolean,
    PRIMARY KEY (snapshot_date, opportunity_sfid)
);

DELETE FROM reporting.opportunity_snapshot WHERE snapshot_date = current_date;

INSERT INTO reporting.opportunity_snapshot
    (snapshot_date, opportunity_sfid, account_sfid, name, type, stagename, amount, closedate,
     fiscal_quarter, is_closed, is_won)
SELECT current_date,
       o.sfid,
       o.accountid,
       o.name,
       o.type,
       o.stagename,
       round(o.amount::numeric, 2),
       o.closedate,
       reporting.fiscal_quarter(o.closedate),
       coalesce(o.isclosed, false),
       coalesce(o.iswon, false)
FROM salesforce.opportunity AS o
WHERE NOT o.isdeleted;
