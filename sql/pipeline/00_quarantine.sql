-- Stage 0, quarantine: input rows the models cannot use are logged with their reason and
-- counted in the run summary; nothing is dropped silently. A row is quarantined once (its hash).
-- run_context (run_id, as_of, written_at, weekend) is a one-row table the runner provides.
CREATE OR REPLACE TABLE stage_quarantine AS
SELECT 'sales' AS table_name, reason, retailer_id, store_id, sku, ts, units,
       mrs_content_hash(reason, retailer_id, store_id, sku, ts, units, revenue) AS row_hash
FROM (
    SELECT *,
        CASE
            WHEN store_id IS NULL OR store_id = '' THEN 'NULL store_id'
            WHEN sku IS NULL OR sku = '' THEN 'NULL sku'
            WHEN ts IS NULL THEN 'NULL ts'
            WHEN units IS NULL THEN 'NULL units'
            WHEN isnan(units) THEN 'NaN units'
            WHEN abs(units) = CAST('Infinity' AS DOUBLE) THEN 'infinite units'
        END AS reason
    FROM sales
)
WHERE reason IS NOT NULL;

INSERT INTO quarantine_log
SELECT DISTINCT q.table_name, q.reason, q.retailer_id, q.store_id, q.sku, q.ts, q.units, q.row_hash,
       rc.run_id, rc.written_at
FROM stage_quarantine q CROSS JOIN run_context rc
WHERE q.row_hash NOT IN (SELECT row_hash FROM quarantine_log WHERE row_hash IS NOT NULL);
