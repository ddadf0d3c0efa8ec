-- Stage 4, attribute: evidence per report from its own shape and data-quality signatures, its
-- neighbourhood (cluster stage) and the context tables, then mrs_attribute proposes the causes.

-- A recorded promotion covering the report's store, retailer and top SKU/brand/category while
-- the window runs.
CREATE OR REPLACE TABLE stage_promo AS
SELECT i.report_id, 1.0 AS promo_overlap
FROM stage_report_inputs i
JOIN promotions p
  ON (p.retailer_id IS NULL OR p.retailer_id = i.retailer_id)
 AND (p.store_id IS NULL OR p.store_id = i.store_id)
 AND (p.sku IS NULL OR p.sku = i.top_sku)
 AND (p.brand IS NULL OR p.brand = i.top_brand)
 AND (p.category IS NULL OR p.category = i.top_category)
 AND p.start_ts <= i.window_last
 AND p.end_ts > i.window_start
GROUP BY i.report_id;

-- Marketing spend on the top brand per day during the window over the 14 days before.
CREATE OR REPLACE TABLE stage_spend AS
SELECT i.report_id,
       avg(CASE WHEN m.day >= CAST(i.window_start AS DATE) THEN m.spend END)
         / NULLIF(avg(CASE WHEN m.day < CAST(i.window_start AS DATE) THEN m.spend END), 0) AS spend_ratio
FROM stage_report_inputs i
JOIN (SELECT brand, day, sum(spend) AS spend FROM marketing_spend GROUP BY brand, day) m
  ON m.brand = i.top_brand
 AND m.day >= CAST(i.window_start AS DATE) - INTERVAL '14 days'
 AND m.day <= CAST(i.window_last AS DATE)
GROUP BY i.report_id;

-- Social mentions of the top SKU per hour during the window over the 7 days before.
CREATE OR REPLACE TABLE stage_social AS
SELECT i.report_id,
       avg(CASE WHEN s.ts >= i.window_start - INTERVAL '3 hours' THEN s.mentions END)
         / NULLIF(avg(CASE WHEN s.ts < i.window_start - INTERVAL '3 hours' THEN s.mentions END), 0) AS social_ratio
FROM stage_report_inputs i
JOIN social_mentions s
  ON s.sku = i.top_sku
 AND s.ts >= i.window_start - INTERVAL '7 days'
 AND s.ts <= i.window_last
GROUP BY i.report_id;

-- The brands and SKUs of each report's top 3 SKUs (by absolute excess).
CREATE OR REPLACE TABLE stage_report_top3 AS
SELECT report_id, sku, brand FROM (
    SELECT report_id, sku, brand,
           row_number() OVER (PARTITION BY report_id ORDER BY abs(excess) DESC, sku) AS rk
    FROM stage_sku_excess
) WHERE rk <= 3;

-- The largest spend ratio (window days over the 14 days before) over those brands.
CREATE OR REPLACE TABLE stage_spend_any AS
SELECT report_id, max(ratio) AS spend_ratio_max FROM (
    SELECT b.report_id, b.brand,
           avg(CASE WHEN m.day >= CAST(i.window_start AS DATE) THEN m.spend END)
             / NULLIF(avg(CASE WHEN m.day < CAST(i.window_start AS DATE) THEN m.spend END), 0) AS ratio
    FROM (SELECT DISTINCT report_id, brand FROM stage_report_top3 WHERE brand IS NOT NULL) b
    JOIN stage_report_inputs i ON i.report_id = b.report_id
    JOIN (SELECT brand, day, sum(spend) AS spend FROM marketing_spend GROUP BY brand, day) m
      ON m.brand = b.brand
     AND m.day >= CAST(i.window_start AS DATE) - INTERVAL '14 days'
     AND m.day <= CAST(i.window_last AS DATE)
    GROUP BY b.report_id, b.brand
) GROUP BY report_id;

-- The largest mention ratio (window over the 7 days before) over those SKUs.
CREATE OR REPLACE TABLE stage_social_any AS
SELECT report_id, max(ratio) AS social_ratio_max FROM (
    SELECT t.report_id, t.sku,
           avg(CASE WHEN s.ts >= i.window_start - INTERVAL '3 hours' THEN s.mentions END)
             / NULLIF(avg(CASE WHEN s.ts < i.window_start - INTERVAL '3 hours' THEN s.mentions END), 0) AS ratio
    FROM stage_report_top3 t
    JOIN stage_report_inputs i ON i.report_id = t.report_id
    JOIN social_mentions s
      ON s.sku = t.sku
     AND s.ts >= i.window_start - INTERVAL '7 days'
     AND s.ts <= i.window_last
    GROUP BY t.report_id, t.sku
) GROUP BY report_id;

CREATE OR REPLACE TABLE stage_retailer_size AS
SELECT retailer_id, count(*) AS n_stores, (SELECT count(*) FROM stores) AS n_all
FROM stores GROUP BY retailer_id;

-- Concurrent reports in the same direction at other stores (windows within 3 hours of each
-- other): do they share a top SKU, the top brand, the top category, the retailer; how far.
CREATE OR REPLACE TABLE stage_concurrent AS
SELECT a.report_id, b.store_id, b.retailer_id = a.retailer_id AS same_retailer,
       coalesce(array_has_any(a.top_skus, b.top_skus), false) AS shares_sku,
       coalesce(a.top_brand = b.top_brand, false) AS same_brand,
       coalesce(a.top_category = b.top_category, false) AS same_category,
       2 * 6371 * asin(sqrt(power(sin(radians(b.lat - a.lat) / 2), 2)
           + cos(radians(a.lat)) * cos(radians(b.lat)) * power(sin(radians(b.lon - a.lon) / 2), 2))) AS km
FROM stage_report_inputs a
JOIN stage_report_inputs b
  ON b.store_id <> a.store_id
 AND b.direction = a.direction
 AND b.window_start <= a.window_last + INTERVAL '3 hours'
 AND b.window_last >= a.window_start - INTERVAL '3 hours';

-- How much of the retailer's own stores and of the other retailers' stores move with the
-- report (same SKUs, brand, category), and how local the same-category moves elsewhere are.
CREATE OR REPLACE TABLE stage_coverage AS
SELECT report_id,
       count(DISTINCT CASE WHEN same_retailer AND shares_sku THEN store_id END) AS sku_same,
       count(DISTINCT CASE WHEN NOT same_retailer AND shares_sku THEN store_id END) AS sku_other,
       count(DISTINCT CASE WHEN same_retailer AND same_brand THEN store_id END) AS brand_same,
       count(DISTINCT CASE WHEN NOT same_retailer AND same_brand THEN store_id END) AS brand_other,
       count(DISTINCT CASE WHEN NOT same_retailer AND same_category THEN store_id END) AS cat_other,
       count(DISTINCT CASE WHEN NOT same_retailer AND same_category AND km <= 50 THEN store_id END) AS cat_other_near
FROM stage_concurrent
GROUP BY report_id;

-- A feed that reports zeros and then the missed units at once gives two reports at one store:
-- the zero run (a drop) and the catch-up (a spike). For each spike, the largest zero share of a
-- drop at its store that began before it and whose last anomalous bucket lies within 3 hours of
-- its start.
CREATE OR REPLACE TABLE stage_preceding_zeros AS
SELECT a.report_id, max(b.dq_zero_share) AS preceding_zero_share
FROM stage_report_inputs a
JOIN stage_report_inputs b
  ON b.store_id = a.store_id
 AND b.direction = 'drop'
 AND b.window_start < a.window_start
 AND b.window_last >= a.window_start - INTERVAL '3 hours'
WHERE a.direction = 'spike'
GROUP BY a.report_id;

CREATE OR REPLACE TABLE stage_attribution AS
SELECT i.report_id, mrs_attribute(named_struct(
    'store_id', i.store_id,
    'retailer_id', i.retailer_id,
    'region', i.region,
    'direction', i.direction,
    'severity', i.severity,
    'duration_buckets', CAST(greatest(cardinality(i.profile), 1) AS DOUBLE),
    'magnitude', i.magnitude,
    'relative_change', i.excess_units / NULLIF(i.baseline_units, 0),
    'affected_skus', CAST(i.affected_skus AS DOUBLE),
    'total_skus', CAST(i.total_skus AS DOUBLE),
    'top_sku', i.top_sku,
    'top_sku_share', i.top_sku_share,
    'top_brand', i.top_brand,
    'top_brand_share', i.top_brand_share,
    'top_category', i.top_category,
    'top_category_share', i.top_category_share,
    'profile', i.profile,
    'dq_ratio', i.dq_ratio,
    'dq_integer_multiple_share', i.dq_integer_multiple_share,
    'dq_multiple_evidence', i.dq_multiple_evidence,
    'dq_zero_share', i.dq_zero_share,
    'dq_catchup', i.dq_catchup,
    'dq_stuck_share', i.dq_stuck_share,
    'dq_negative_count', CAST(i.dq_negative_count AS DOUBLE),
    'promo_overlap', coalesce(p.promo_overlap, 0.0),
    'spend_ratio', sp.spend_ratio,
    'social_ratio', so.social_ratio,
    'cluster_size', CAST(c.cluster_size AS DOUBLE),
    'co_sku_stores', CAST(c.co_sku_stores AS DOUBLE),
    'co_sku_retailers', CAST(c.co_sku_retailers AS DOUBLE),
    'co_retailer_share', CAST(c.co_retailer_reports AS DOUBLE)
                         / CAST(NULLIF(rs.n_stores - 1, 0) AS DOUBLE),
    'co_category_other_retailer_nearby', CAST(c.co_category_other_retailer_nearby AS DOUBLE),
    'sku_retailer_coverage', CAST(coalesce(cv.sku_same, 0) AS DOUBLE) / CAST(NULLIF(rs.n_stores - 1, 0) AS DOUBLE),
    'sku_other_retailer_coverage', CAST(coalesce(cv.sku_other, 0) AS DOUBLE) / CAST(NULLIF(rs.n_all - rs.n_stores, 0) AS DOUBLE),
    'brand_retailer_coverage', CAST(coalesce(cv.brand_same, 0) AS DOUBLE) / CAST(NULLIF(rs.n_stores - 1, 0) AS DOUBLE),
    'brand_other_retailer_coverage', CAST(coalesce(cv.brand_other, 0) AS DOUBLE) / CAST(NULLIF(rs.n_all - rs.n_stores, 0) AS DOUBLE),
    'category_other_retailer_coverage', CAST(coalesce(cv.cat_other, 0) AS DOUBLE) / CAST(NULLIF(rs.n_all - rs.n_stores, 0) AS DOUBLE),
    'category_nearby_share', CAST(cv.cat_other_near AS DOUBLE) / CAST(NULLIF(cv.cat_other, 0) AS DOUBLE),
    'sku_same_retailer_share', CAST(cv.sku_same AS DOUBLE) / CAST(NULLIF(cv.sku_same + cv.sku_other, 0) AS DOUBLE),
    'brand_same_retailer_share', CAST(cv.brand_same AS DOUBLE) / CAST(NULLIF(cv.brand_same + cv.brand_other, 0) AS DOUBLE),
    'spend_ratio_max', spa.spend_ratio_max,
    'social_ratio_max', soa.social_ratio_max,
    'preceding_zero_share', coalesce(pz.preceding_zero_share, 0.0)
)) AS a
FROM stage_report_inputs i
LEFT JOIN stage_clusters c ON c.report_id = i.report_id
LEFT JOIN stage_promo p ON p.report_id = i.report_id
LEFT JOIN stage_spend sp ON sp.report_id = i.report_id
LEFT JOIN stage_social so ON so.report_id = i.report_id
LEFT JOIN stage_retailer_size rs ON rs.retailer_id = i.retailer_id
LEFT JOIN stage_coverage cv ON cv.report_id = i.report_id
LEFT JOIN stage_spend_any spa ON spa.report_id = i.report_id
LEFT JOIN stage_social_any soa ON soa.report_id = i.report_id
LEFT JOIN stage_preceding_zeros pz ON pz.report_id = i.report_id;

CREATE OR REPLACE TABLE stage_attribution_flat AS
SELECT report_id, a['cause'] AS cause, a['narrative'] AS narrative, a['confidence'] AS confidence,
       a['confidence_tier'] AS confidence_tier, a['impact_vector'] AS impact_vector,
       a['cause_2'] AS cause_2, a['confidence_2'] AS confidence_2,
       a['cause_3'] AS cause_3, a['confidence_3'] AS confidence_3,
       a['evidence'] AS evidence, a['localisation'] AS localisation,
       mrs_content_hash(a['cause'], a['narrative'], a['confidence'], a['cause_2'],
                        a['confidence_2'], a['cause_3'], a['confidence_3']) AS content_hash
FROM stage_attribution;

INSERT INTO minority_reports_proposed_attribution_log
SELECT a.report_id, a.cause, a.narrative, a.confidence, a.confidence_tier, a.impact_vector,
       a.cause_2, a.confidence_2, a.cause_3, a.confidence_3, a.evidence, a.localisation,
       'mrs-attribute 0.1' AS model_version, a.content_hash, rc.run_id, rc.written_at
FROM stage_attribution_flat a
CROSS JOIN run_context rc
LEFT JOIN latest_attribution l ON l.report_id = a.report_id
WHERE l.report_id IS NULL OR l.content_hash <> a.content_hash;
