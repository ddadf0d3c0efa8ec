-- Protection feeds (DESIGN §7): what downstream models must not learn from.

-- Marketing-mix models: the store x SKU x time cells of every live event. Confirmed (by an
-- analyst or by automation) cells are to be replaced by the baseline; cells of events still
-- waiting for review are to be excluded; rejected events protect nothing. cell_end is exclusive
-- and NULL while the report is open.
CREATE OR REPLACE VIEW mmm_protection AS
SELECT
    ev.report_group_id AS event_id, r.report_id, r.store_id, r.retailer_id,
    r.e['sku'] AS sku, r.window_start AS cell_start, r.window_end AS cell_end,
    CASE WHEN ev.status IN ('confirmed', 'auto-confirmed') THEN 'replace_by_baseline'
         ELSE 'exclude' END AS action,
    r.e['baseline'] / CAST(greatest(cardinality(r.profile), 1) AS DOUBLE) AS baseline_units_per_bucket,
    r.e['actual'] AS actual_units, r.e['baseline'] AS baseline_units,
    ev.cause, ev.impact_vector, ev.status, ev.confidence
FROM minority_events ev
JOIN (SELECT report_id, store_id, retailer_id, window_start, window_end, profile,
             report_group_id, unnest(sku_evidence) AS e
      FROM minority_reports) r
  ON r.report_group_id = ev.report_group_id
WHERE ev.status NOT IN ('rejected', 'closed');

-- Bandits: reward windows to mask, per arm. Arms are store x SKU; marketing events also mask
-- the brand's campaign arm.
CREATE OR REPLACE VIEW bandit_masks AS
SELECT 'store_sku' AS arm_type, store_id || '/' || sku AS arm_id, cell_start AS mask_start,
       cell_end AS mask_end, event_id, cause, status, confidence
FROM mmm_protection
UNION ALL
SELECT DISTINCT 'brand_campaign' AS arm_type, k.brand AS arm_id, p.cell_start AS mask_start,
       p.cell_end AS mask_end, p.event_id, p.cause, p.status, p.confidence
FROM mmm_protection p JOIN skus k ON k.sku = p.sku
WHERE p.cause = 'Marketing Misattribution' AND k.brand IS NOT NULL;

-- Sales with confirmed anomalous cells replaced by their baseline (one store's windows never
-- overlap, so each sales row matches at most one cell).
CREATE OR REPLACE VIEW protected_sales AS
SELECT s.retailer_id, s.store_id, s.sku, s.ts,
       CASE WHEN p.event_id IS NULL THEN s.units ELSE p.baseline_units_per_bucket END AS units,
       s.units AS observed_units,
       p.event_id IS NOT NULL AS protected,
       p.event_id, p.cause
FROM sales_clean s
LEFT JOIN (SELECT * FROM mmm_protection WHERE action = 'replace_by_baseline') p
  ON p.store_id = s.store_id AND p.sku = s.sku
 AND s.ts >= p.cell_start AND (p.cell_end IS NULL OR s.ts < p.cell_end);
