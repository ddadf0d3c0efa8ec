-- Sales rows the models may use. Rows with a NULL key, NULL/NaN/infinite units are quarantined
-- by the quarantine stage instead (see quarantine_log); negative units stay, as evidence of a
-- data error. Exact duplicates of (store_id, sku, ts) are summed by the detector's bucketing.
CREATE OR REPLACE VIEW sales_clean AS
SELECT retailer_id, store_id, sku, ts, units, revenue
FROM sales
WHERE store_id IS NOT NULL AND store_id <> ''
  AND sku IS NOT NULL AND sku <> ''
  AND ts IS NOT NULL
  AND units IS NOT NULL AND NOT isnan(units) AND abs(units) < CAST('Infinity' AS DOUBLE);
