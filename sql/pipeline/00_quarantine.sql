-- Stage 0, quarantine: input rows the models cannot use (their reasons are in sales_checked,
-- sql/views/00_inputs.sql) are logged with the reason and counted in the run summary; nothing
-- is dropped silently. Each bad input row gives one quarantine row (identical rows of one file
-- give as many), once: a rerun skips rows whose hash the log already holds. The hash includes
-- the row's file, so the same bad row delivered again in a new file is logged again. A row
-- superseded by a later correction is logged when the correction arrives.
-- run_context (run_id, as_of, written_at, weekend) is a one-row table the runner provides, and
-- so is `quarantine_sales`: `sales_checked` bounded to the rows that can have a new reason
-- since the last run (README "Incremental runs"; every row on a first run or when the stores,
-- SKUs, holidays, grid or file set changed).
CREATE OR REPLACE TABLE stage_quarantine AS
SELECT 'sales' AS table_name, reason, retailer_id, store_id, sku, ts, units,
       mrs_content_hash(reason, retailer_id, store_id, sku, ts, units, revenue, source_file) AS row_hash
FROM quarantine_sales
WHERE reason IS NOT NULL;

INSERT INTO quarantine_log
SELECT q.table_name, q.reason, q.retailer_id, q.store_id, q.sku, q.ts, q.units, q.row_hash,
       rc.run_id, rc.written_at
FROM stage_quarantine q CROSS JOIN run_context rc
WHERE q.row_hash NOT IN (SELECT row_hash FROM quarantine_log WHERE row_hash IS NOT NULL);
