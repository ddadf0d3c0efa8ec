-- Sales input checks (README "The lake"). `sales` is the normalised input view: every row of
-- every file under input/sales, with `source_file` (its path there) and `unparsable` (set when
-- a ts/units/revenue column came as text that does not parse); `sales_grid(step_us, phase_us)`
-- is the lake's bucket grid, inferred from the distinct timestamps by the runner.
--
-- Row checks, first match wins (the reason is what quarantine_log records):
--   NULL or empty store_id / sku; unparsable or NULL ts; unparsable, NULL, NaN or infinite units;
--   units beyond 1e9 in absolute value (no shop sells that in a bucket: a unit slip upstream);
--   ts more than a day ahead of the wall clock (a clock or time-zone error upstream; such a row
--   becomes usable once its time has come, and stays in the quarantine log);
--   ts off the lake's bucket grid (a bucket must be named by its start; flooring would silently
--   merge the row into a bucket it may not belong to);
--   store_id not in stores, sku not in skus (the models cannot place the row; it becomes usable
--   once the dimension row arrives).
-- Negative units stay usable on purpose: they are a Data Error signature (DESIGN §5) that the
-- detector counts (dq_negative_count); `warning` flags them here.
CREATE OR REPLACE VIEW sales_screened AS
SELECT s.retailer_id, s.store_id, s.sku, s.ts, s.units, s.revenue,
    CAST(s.source_file AS VARCHAR) AS source_file,
    CASE
        WHEN s.store_id IS NULL OR s.store_id = '' THEN 'NULL store_id'
        WHEN s.sku IS NULL OR s.sku = '' THEN 'NULL sku'
        WHEN s.unparsable = 'unparsable ts' THEN 'unparsable ts'
        WHEN s.ts IS NULL THEN 'NULL ts'
        WHEN s.unparsable IS NOT NULL THEN s.unparsable
        WHEN s.units IS NULL THEN 'NULL units'
        WHEN isnan(s.units) THEN 'NaN units'
        WHEN abs(s.units) = CAST('Infinity' AS DOUBLE) THEN 'infinite units'
        WHEN abs(s.units) > 1e9 THEN 'absurd units'
        WHEN s.ts > now() + INTERVAL '1 day' THEN 'ts in the future'
        WHEN g.step_us IS NOT NULL
             AND (CAST(s.ts AS BIGINT) - g.phase_us) % g.step_us <> 0 THEN 'ts off the bucket grid'
        WHEN st.known_store IS NULL THEN 'store_id not in stores'
        WHEN sk.known_sku IS NULL THEN 'sku not in skus'
    END AS reason,
    CASE WHEN s.units < 0 THEN 'negative units' END AS warning
-- Small dimension tables on the build side of the joins, the sales on the probe side.
FROM (SELECT DISTINCT sku AS known_sku FROM skus) sk
RIGHT JOIN ((SELECT DISTINCT store_id AS known_store FROM stores) st
            RIGHT JOIN (sales_grid g CROSS JOIN sales s) ON st.known_store = s.store_id)
    ON sk.known_sku = s.sku;

-- Several usable rows for one (store_id, sku, ts): the last in arrival order is the value,
-- arrival order being the file path under input/sales (a later delivery sorts later), then, for
-- rows of one file, the larger units, revenue and retailer_id (a fixed rule, so the result
-- never depends on listing or thread order). The others are quarantined: identical to the
-- value in every column, 'duplicate row'; from an earlier file, 'superseded by correction';
-- from the same file, 'conflicting row in one file'.
--
-- Every row with the reason it is not used (NULL when it is). The ranking runs only over the
-- keys that have several usable rows. Finding those groups every usable row by its cell: by
-- `ts` and a 64-bit hash of (store_id, sku) rather than by the strings, which needed about 2
-- GiB for 21.5M cells. A hash shared by two cells only makes both candidates: the ranking
-- partitions by the values themselves, so a lone row there ranks first and stays usable. `ts`
-- stays a key of its own so that a time bound on this view reaches the grouping too.
CREATE OR REPLACE VIEW sales_checked AS
WITH marked AS (
    SELECT s.*, (s.reason IS NULL AND c.n IS NOT NULL) AS contested
    FROM (SELECT ts, mrs_row_key(store_id, sku) AS cell, count(*) AS n FROM sales_screened
          WHERE reason IS NULL GROUP BY ts, mrs_row_key(store_id, sku) HAVING count(*) > 1) c
    RIGHT JOIN sales_screened s ON c.ts = s.ts AND c.cell = mrs_row_key(s.store_id, s.sku)
),
ranked AS (
    SELECT *,
        row_number() OVER w AS arrival_rank,
        count(*) OVER (PARTITION BY store_id, sku, ts) AS n_rows,
        last_value(source_file) OVER wall AS value_file,
        last_value(retailer_id) OVER wall AS value_retailer_id,
        last_value(units) OVER wall AS value_units,
        last_value(revenue) OVER wall AS value_revenue
    FROM marked WHERE contested
    WINDOW w AS (PARTITION BY store_id, sku, ts
                 ORDER BY source_file, units, revenue NULLS FIRST, retailer_id NULLS FIRST),
           wall AS (PARTITION BY store_id, sku, ts
                    ORDER BY source_file, units, revenue NULLS FIRST, retailer_id NULLS FIRST
                    ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
)
SELECT retailer_id, store_id, sku, ts, units, revenue, source_file, reason, warning
FROM marked WHERE NOT contested
UNION ALL
SELECT retailer_id, store_id, sku, ts, units, revenue, source_file,
    CASE
        WHEN arrival_rank = n_rows THEN NULL
        WHEN (units = value_units) AND (revenue IS NOT DISTINCT FROM value_revenue)
             AND (retailer_id IS NOT DISTINCT FROM value_retailer_id) THEN 'duplicate row'
        WHEN source_file < value_file THEN 'superseded by correction'
        ELSE 'conflicting row in one file'
    END AS reason,
    warning
FROM ranked;

-- Sales rows the models use: one per (store_id, sku, ts), the value chosen by the rule above.
-- Only contested cells are ranked (a window over those few rows); every other row passes
-- straight through, so the models neither sort nor re-aggregate the sales (an ordered
-- aggregate over every cell needed 16 GiB on the bench preset).
CREATE OR REPLACE VIEW sales_clean AS
SELECT retailer_id, store_id, sku, ts, units, revenue
FROM sales_checked
WHERE reason IS NULL;
