-- Every sales row with the reason it cannot be used (NULL when it can), written once so that the
-- quarantine stage and the models agree. Negative units stay usable, as evidence of a data
-- error; exact duplicates of (store_id, sku, ts) are summed by the detector's bucketing.
--   NULL or empty store_id / sku, NULL ts, NULL / NaN / infinite units;
--   units beyond 1e9 in absolute value (no shop sells that in a bucket: a unit slip upstream);
--   ts more than a day ahead of the wall clock (a clock or time-zone error upstream; such a row
--   becomes usable once its time has come, and stays in the quarantine log).
CREATE OR REPLACE VIEW sales_checked AS
SELECT retailer_id, store_id, sku, ts, units, revenue,
    CASE
        WHEN store_id IS NULL OR store_id = '' THEN 'NULL store_id'
        WHEN sku IS NULL OR sku = '' THEN 'NULL sku'
        WHEN ts IS NULL THEN 'NULL ts'
        WHEN units IS NULL THEN 'NULL units'
        WHEN isnan(units) THEN 'NaN units'
        WHEN abs(units) = CAST('Infinity' AS DOUBLE) THEN 'infinite units'
        WHEN abs(units) > 1e9 THEN 'absurd units'
        WHEN ts > now() + INTERVAL '1 day' THEN 'ts in the future'
    END AS reason
FROM sales;

-- Sales rows the models may use; the others are in quarantine_log with their reason.
CREATE OR REPLACE VIEW sales_clean AS
SELECT retailer_id, store_id, sku, ts, units, revenue
FROM sales_checked
WHERE reason IS NULL;
