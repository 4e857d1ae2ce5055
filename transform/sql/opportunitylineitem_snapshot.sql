-- Today's snapshot of every opportunity line item with its product and annualised value, last
-- step of the hourly chain. `arr` is set for lines whose subscription covers today (whatever the
-- opportunity's stage; reporting.account_arr counts won ones only). Rewrites today's rows only.

CREATE SCHEMA IF NOT EXISTS reporting;

CREATE TABLE IF NOT EXISTS reporting.opportunitylineitem_snapshot (
    snapshot_date date NOT NULL,
    lineitem_sfid varchar(18) NOT NULL,
    opportunity_sfid varchar(18),
    account_sfid varchar(18),
    product_name text,
    product_family text,
    quantity numeric(14, 2),
    totalprice numeric(14, 2),
    start_date date,
    end_date date,
    is_active boolean NOT NULL,
    arr numeric(14, 2),
    PRIMARY KEY (snapshot_date, lineitem_sfid)
);

DELETE FROM reporting.opportunitylineitem_snapshot WHERE snapshot_date = current_date;

INSERT INTO reporting.opportunitylineitem_snapshot
    (snapshot_date, lineitem_sfid, opportunity_sfid, account_sfid, product_name, product_family,
     quantity, totalprice, start_date, end_date, is_active, arr)
SELECT current_date,
       oli.sfid,
       oli.opportunityid,
       o.accountid,
       p.name,
       p.family,
       round(oli.quantity::numeric, 2),
       round(oli.totalprice::numeric, 2),
       oli.start_date__c,
       oli.end_date__c,
       active.is_active,
       CASE WHEN active.is_active
            THEN round((oli.totalprice * 365.0 / (oli.end_date__c - oli.start_date__c + 1))::numeric, 2)
       END
FROM salesforce.opportunitylineitem AS oli
LEFT JOIN salesforce.opportunity AS o ON o.sfid = oli.opportunityid
LEFT JOIN salesforce.product2 AS p ON p.sfid = oli.product2id
CROSS JOIN LATERAL (
    SELECT coalesce(oli.start_date__c <= current_date AND oli.end_date__c >= current_date, false)
) AS active (is_active)
WHERE NOT oli.isdeleted;
