-- Per-bucket baseline and score of every store x SKU cell series and every store-total series,
-- holiday store-days left out as in sql/pipeline/01_detect.sql, through mrs-detect's own scorer
-- (the anomaly_baseline / anomaly_score window functions): the reference that
-- bench/check_peers.py compares the DuckDB and Polars peers with.
COPY (
WITH hd AS (SELECT DISTINCT st.store_id, h.day FROM holidays h
            JOIN stores st ON h.region IS NULL OR h.region = st.region),
cells AS (SELECT s.store_id, s.sku, s.ts, sum(s.units) AS y
          FROM sales_clean s LEFT JOIN hd ON hd.store_id = s.store_id AND hd.day = CAST(s.ts AS DATE)
          WHERE hd.store_id IS NULL GROUP BY 1, 2, 3),
series AS (SELECT * FROM cells UNION ALL SELECT store_id, '' AS sku, ts, sum(y) FROM cells GROUP BY 1, 2, 3)
SELECT store_id, sku, CAST(to_unixtime(ts) AS BIGINT) AS ts_s,
       anomaly_baseline(ts, y) OVER w AS baseline, anomaly_score(ts, y) OVER w AS score
FROM series WINDOW w AS (PARTITION BY store_id, sku ORDER BY ts)
) TO '${out}' STORED AS CSV OPTIONS ('format.has_header' 'true');
