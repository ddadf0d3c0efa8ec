-- Hydrated objects: derived from the logs, never written by a stage (DESIGN §4).

-- One wide row per live report: the latest snapshot of every per-report log merged, with the
-- authoritative window end from minority_event_ended_log. Retracted reports are left out here
-- and stay in the logs' history.
CREATE OR REPLACE VIEW minority_reports AS
SELECT
    d.report_id, d.store_id, d.retailer_id, d.region, d.status AS detection_status,
    d.window_start, coalesce(e.window_end, d.window_end) AS window_end,
    d.last_anomalous_ts, d.peak_ts, d.direction, d.severity, d.anomalous_buckets,
    d.actual_units, d.baseline_units, d.excess_units, d.noise_units, d.magnitude,
    d.affected_skus, d.total_skus, d.top_skus, d.sku_evidence, d.profile,
    c.cluster_id, c.cluster_size,
    a.cause, a.confidence, a.confidence_tier, a.impact_vector, a.narrative,
    a.cause_2, a.confidence_2, a.cause_3, a.confidence_3, a.evidence, a.localisation,
    h.report_group_id, h.group_size, h.group_confidence,
    d.written_at AS detected_at
FROM latest_detected d
LEFT JOIN latest_ended e ON e.report_id = d.report_id
LEFT JOIN latest_clustered c ON c.report_id = d.report_id
LEFT JOIN latest_attribution a ON a.report_id = d.report_id
LEFT JOIN latest_cohort h ON h.report_id = d.report_id
WHERE d.status <> 'retracted';

-- One row per Minority Event: its latest snapshot.
CREATE OR REPLACE VIEW minority_events AS
SELECT * FROM latest_events WHERE status <> 'dissolved';

-- Events waiting for an analyst, most consequential first: more stores, more absolute excess.
CREATE OR REPLACE VIEW review_queue AS
SELECT report_group_id, cause, confidence, confidence_tier, n_stores, n_retailers,
       sum_excess, window_start, window_end, store_id_1, retailer_1, store_id_2, retailer_2
FROM minority_events
WHERE status = 'waiting for review'
ORDER BY n_stores DESC, abs(sum_excess) DESC, report_group_id;
