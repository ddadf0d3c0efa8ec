-- Stage 1, detect: score every store's sales with the causal robust seasonal model
-- (mrs_detect, grouped by store) and keep one row per store-level anomaly window, a Minority
-- Report with report_id = MR-blake3(store_id | first_detected_from) (DESIGN §3).
--
-- Holidays (input/holidays: a day, national when region is NULL, else for the stores of that
-- region) are not scored: their buckets are left out of the detector's input, so they are
-- neither normal nor anomalous, never enter the seasonal history or the level correction
-- (a whole-day holiday uplift would otherwise pre-load the level and hide a shift starting
-- the next day), and raise no report. An anomaly on a holiday is found from the next bucket
-- on. Without a holidays table every bucket is scored.
CREATE OR REPLACE TABLE stage_holiday_store_days AS
SELECT DISTINCT st.store_id, h.day
FROM holidays h JOIN stores st ON h.region IS NULL OR h.region = st.region;

-- The detector's input: clean sales outside holidays. `detect_sales` is `sales_clean` bounded
-- by the runner to what this run's detections need (README "Incremental runs"): its bounds are
-- literals, so they prune files and reach below the duplicate and correction checks.
CREATE OR REPLACE VIEW detect_input AS
SELECT s.store_id, s.sku, s.ts, s.units
FROM detect_sales s
LEFT JOIN stage_holiday_store_days hd
  ON hd.store_id = s.store_id AND hd.day = CAST(s.ts AS DATE)
WHERE hd.store_id IS NULL;

-- Incremental runs: the stores the runner found able to resume from the previous run's
-- checkpoint (same detector and inputs, no late row before `resume_from`, nothing hidden by
-- --as-of, not --full), with their checkpoint.
CREATE OR REPLACE TABLE stage_checkpoint AS
SELECT cp.store_id, cp.checkpoint, cp.read_from, cp.resume_from
FROM detector_checkpoint cp
JOIN detector_checkpoint_valid v ON v.store_id = cp.store_id
CROSS JOIN stage_detector d
WHERE cp.detector = d.version;

-- Each store's detection: from its checkpoint with the rows it still needs, else from all rows.
CREATE OR REPLACE TABLE stage_detect_out AS
SELECT store_id, mrs_detect_resume(sku, ts, units, checkpoint) AS out
FROM (SELECT i.store_id, i.sku, i.ts, i.units, CAST(NULL AS BYTEA) AS checkpoint
      FROM detect_input i
      LEFT JOIN stage_checkpoint c ON c.store_id = i.store_id
      WHERE c.store_id IS NULL OR i.ts >= c.read_from
      UNION ALL
      SELECT store_id, NULL, NULL, NULL, checkpoint FROM stage_checkpoint)
GROUP BY store_id;

CREATE OR REPLACE TABLE stage_detect_raw AS
SELECT store_id, unnest(out['reports']) AS r FROM stage_detect_out;

CREATE OR REPLACE TABLE stage_detected_base AS
SELECT
    mrs_report_id(w.store_id, w.r['first_detected_from']) AS report_id,
    w.store_id, s.retailer_id, s.region,
    CASE WHEN w.r['window_end'] IS NULL THEN 'open' ELSE 'ended' END AS status,
    w.r['first_detected_from'] AS window_start,
    w.r['window_end'] AS window_end,
    w.r['last_anomalous_ts'] AS last_anomalous_ts,
    w.r['alerted_at'] AS alerted_at,
    w.r['peak_ts'] AS peak_ts,
    w.r['direction'] AS direction,
    w.r['severity'] AS severity,
    w.r['anomalous_buckets'] AS anomalous_buckets,
    w.r['actual_units'] AS actual_units,
    w.r['baseline_units'] AS baseline_units,
    w.r['excess_units'] AS excess_units,
    w.r['noise_units'] AS noise_units,
    CASE WHEN w.r['noise_units'] > 0 THEN w.r['excess_units'] / w.r['noise_units'] END AS magnitude,
    w.r['affected_skus'] AS affected_skus,
    w.r['total_skus'] AS total_skus,
    w.r['sku_evidence'] AS sku_evidence,
    w.r['profile'] AS profile,
    w.r['dq_ratio'] AS dq_ratio,
    w.r['dq_integer_multiple_share'] AS dq_integer_multiple_share,
    w.r['dq_multiple_evidence'] AS dq_multiple_evidence,
    w.r['dq_zero_share'] AS dq_zero_share,
    w.r['dq_catchup'] AS dq_catchup,
    w.r['dq_stuck_share'] AS dq_stuck_share,
    w.r['dq_negative_count'] AS dq_negative_count
FROM stage_detect_raw w
LEFT JOIN stores s ON s.store_id = w.store_id;

-- The SKUs that drive each report, largest absolute excess first (at most five).
CREATE OR REPLACE TABLE stage_top_skus AS
SELECT report_id, array_slice(array_agg(sku ORDER BY abs_excess DESC, sku), 1, 5) AS top_skus
FROM (SELECT report_id, e['sku'] AS sku, abs(e['excess']) AS abs_excess
      FROM (SELECT report_id, unnest(sku_evidence) AS e FROM stage_detected_base))
GROUP BY report_id;

CREATE OR REPLACE TABLE stage_detected_now AS
SELECT b.*, t.top_skus,
       -- total_skus is left out of the hash: a SKU first sold after the window must not
       -- re-snapshot a finished report.
       mrs_content_hash(b.status, b.window_end, b.last_anomalous_ts, b.peak_ts, b.direction,
                        b.severity, b.anomalous_buckets, b.actual_units, b.baseline_units,
                        b.noise_units, b.affected_skus, b.sku_evidence) AS content_hash
FROM stage_detected_base b LEFT JOIN stage_top_skus t ON t.report_id = b.report_id;

-- Every current report: those detected now, and, for a store resumed from its checkpoint, the
-- reports it decided before `recomputed_from` (as the log has them; a full recompute gives
-- them unchanged).
CREATE OR REPLACE TABLE stage_detected AS
SELECT * FROM stage_detected_now
UNION ALL
SELECT l.report_id, l.store_id, l.retailer_id, l.region, l.status, l.window_start, l.window_end,
       l.last_anomalous_ts, l.alerted_at, l.peak_ts, l.direction, l.severity,
       l.anomalous_buckets, l.actual_units, l.baseline_units, l.excess_units, l.noise_units,
       l.magnitude, l.affected_skus, l.total_skus, l.sku_evidence, l.profile, l.dq_ratio,
       l.dq_integer_multiple_share, l.dq_multiple_evidence, l.dq_zero_share, l.dq_catchup,
       l.dq_stuck_share, l.dq_negative_count, l.top_skus, l.content_hash
FROM latest_detected l
JOIN (SELECT store_id, out['recomputed_from'] AS recomputed_from FROM stage_detect_out) o
  ON o.store_id = l.store_id
WHERE o.recomputed_from IS NOT NULL
  AND l.window_start < o.recomputed_from
  AND l.status <> 'retracted';

-- Append a snapshot for every new or changed report.
INSERT INTO minority_reports_detected_log
SELECT d.report_id, d.store_id, d.retailer_id, d.region, d.status, d.window_start, d.window_end,
       d.last_anomalous_ts, d.peak_ts, d.direction, d.severity, d.anomalous_buckets,
       d.actual_units, d.baseline_units, d.excess_units, d.noise_units, d.magnitude,
       d.affected_skus, d.total_skus, d.top_skus, d.sku_evidence, d.profile,
       d.dq_ratio, d.dq_integer_multiple_share, d.dq_zero_share, d.dq_catchup, d.dq_stuck_share,
       d.dq_negative_count, v.version AS detector_version, d.content_hash,
       rc.run_id, rc.written_at, d.alerted_at, d.dq_multiple_evidence
FROM stage_detected d
CROSS JOIN run_context rc
CROSS JOIN stage_detector v
LEFT JOIN latest_detected l ON l.report_id = d.report_id
WHERE l.report_id IS NULL OR l.content_hash <> d.content_hash;

-- A report that the data no longer supports (a late correction moved or removed it) is
-- retracted by an appended snapshot, never by disappearing from the history. A resumed store
-- recomputed only its reports from `recomputed_from` on; older ones stand.
INSERT INTO minority_reports_detected_log
SELECT l.report_id, l.store_id, l.retailer_id, l.region, 'retracted' AS status, l.window_start,
       l.window_end, l.last_anomalous_ts, l.peak_ts, l.direction, l.severity, l.anomalous_buckets,
       l.actual_units, l.baseline_units, l.excess_units, l.noise_units, l.magnitude,
       l.affected_skus, l.total_skus, l.top_skus, l.sku_evidence, l.profile,
       l.dq_ratio, l.dq_integer_multiple_share, l.dq_zero_share, l.dq_catchup, l.dq_stuck_share,
       l.dq_negative_count, l.detector_version,
       mrs_content_hash('retracted', l.content_hash) AS content_hash,
       rc.run_id, rc.written_at, l.alerted_at, l.dq_multiple_evidence
FROM latest_detected l
CROSS JOIN run_context rc
LEFT JOIN (SELECT store_id, out['recomputed_from'] AS recomputed_from FROM stage_detect_out) o
  ON o.store_id = l.store_id
WHERE l.status <> 'retracted'
  AND l.window_start < rc.as_of
  AND (o.recomputed_from IS NULL OR l.window_start >= o.recomputed_from)
  AND l.report_id NOT IN (SELECT report_id FROM stage_detected);
