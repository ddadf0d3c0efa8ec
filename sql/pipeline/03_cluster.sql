-- Stage 3, cluster: per-report features, then density-based clustering of the live reports by
-- time, place, SKUs, category, retailer, direction and magnitude (mrs_cluster).

-- Excess of each report by SKU, with the SKU's category and brand.
CREATE OR REPLACE TABLE stage_sku_excess AS
SELECT x.report_id, x.e['sku'] AS sku, x.e['excess'] AS excess, k.category, k.brand
FROM (SELECT report_id, unnest(sku_evidence) AS e FROM stage_detected) x
LEFT JOIN skus k ON k.sku = x.e['sku'];

-- For each report and dimension, the value that carries the largest share of absolute excess.
CREATE OR REPLACE TABLE stage_top_dimension AS
SELECT report_id, dimension, value, share FROM (
    SELECT report_id, dimension, value,
           dim_excess / NULLIF(sum(dim_excess) OVER (PARTITION BY report_id, dimension), 0) AS share,
           row_number() OVER (PARTITION BY report_id, dimension ORDER BY dim_excess DESC, value) AS rk
    FROM (
        SELECT report_id, 'sku' AS dimension, sku AS value, sum(abs(excess)) AS dim_excess
        FROM stage_sku_excess GROUP BY report_id, sku
        UNION ALL
        SELECT report_id, 'category', coalesce(category, 'unknown'), sum(abs(excess))
        FROM stage_sku_excess GROUP BY report_id, coalesce(category, 'unknown')
        UNION ALL
        SELECT report_id, 'brand', coalesce(brand, 'unknown'), sum(abs(excess))
        FROM stage_sku_excess GROUP BY report_id, coalesce(brand, 'unknown')
    )
) WHERE rk = 1;

CREATE OR REPLACE TABLE stage_report_inputs AS
SELECT d.*, st.lat, st.lon,
       coalesce(d.last_anomalous_ts, d.window_start) AS window_last,
       ts.value AS top_sku, ts.share AS top_sku_share,
       tc.value AS top_category, tc.share AS top_category_share,
       tb.value AS top_brand, tb.share AS top_brand_share
FROM stage_detected d
LEFT JOIN stores st ON st.store_id = d.store_id
LEFT JOIN stage_top_dimension ts ON ts.report_id = d.report_id AND ts.dimension = 'sku'
LEFT JOIN stage_top_dimension tc ON tc.report_id = d.report_id AND tc.dimension = 'category'
LEFT JOIN stage_top_dimension tb ON tb.report_id = d.report_id AND tb.dimension = 'brand';

CREATE OR REPLACE TABLE stage_clusters AS
SELECT c['report_id'] AS report_id, c['cluster_id'] AS cluster_id, c['cluster_size'] AS cluster_size,
       c['is_core'] AS is_core, c['core_distance'] AS core_distance,
       c['cluster_stores'] AS cluster_stores, c['cluster_retailers'] AS cluster_retailers,
       c['spread_km'] AS spread_km, c['co_sku_stores'] AS co_sku_stores,
       c['co_sku_retailers'] AS co_sku_retailers, c['co_retailer_reports'] AS co_retailer_reports,
       c['co_category_other_retailer_nearby'] AS co_category_other_retailer_nearby
FROM (
    SELECT unnest(mrs_cluster(report_id, store_id, retailer_id, lat, lon, window_start,
                              window_last, direction, top_skus, top_category, magnitude)) AS c
    FROM stage_report_inputs
);

INSERT INTO minority_reports_clustered_log
SELECT c.report_id, c.cluster_id, c.cluster_size, c.is_core, c.core_distance, c.cluster_stores,
       c.cluster_retailers, c.spread_km, c.co_sku_stores, c.co_sku_retailers,
       c.co_retailer_reports, c.co_category_other_retailer_nearby,
       'mrs-cluster 0.1' AS clustering_version, c.content_hash, rc.run_id, rc.written_at
FROM (
    SELECT s.*, mrs_content_hash(s.cluster_id, s.cluster_size, s.is_core, s.core_distance,
        s.cluster_stores, s.cluster_retailers, s.spread_km, s.co_sku_stores, s.co_sku_retailers,
        s.co_retailer_reports, s.co_category_other_retailer_nearby) AS content_hash
    FROM stage_clusters s
) c
CROSS JOIN run_context rc
LEFT JOIN latest_clustered l ON l.report_id = c.report_id
WHERE l.report_id IS NULL OR l.content_hash <> c.content_hash;
