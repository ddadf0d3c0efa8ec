-- Hydrated objects: derived from the logs, never written by a stage (DESIGN §4).

-- One wide row per live report: the latest snapshot of every per-report log merged, with the
-- authoritative window end from minority_event_ended_log. Retracted reports are left out here
-- and stay in the logs' history.
CREATE OR REPLACE VIEW minority_reports AS
SELECT
    d.report_id, d.store_id, d.retailer_id, d.region, d.status AS detection_status,
    d.window_start, coalesce(e.window_end, d.window_end) AS window_end,
    d.last_anomalous_ts, d.alerted_at, d.peak_ts, d.direction, d.severity, d.anomalous_buckets,
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

-- What the decisions say about each event: the status implied by the decision in force and the
-- cause of the latest re-attribution. Used by the events stage and by minority_events, so a
-- decision shows at once, before the next run snapshots it.
--   no decision, or reopen           -> waiting for review
--   confirm by automation            -> auto-confirmed
--   confirm or reattribute (analyst) -> confirmed
--   reject -> rejected, close -> closed
CREATE OR REPLACE VIEW event_decisions AS
SELECT d.report_group_id,
       CASE
           WHEN d.action = 'confirm' AND d.decided_by = 'automation' THEN 'auto-confirmed'
           WHEN d.action IN ('confirm', 'reattribute') THEN 'confirmed'
           WHEN d.action = 'reject' THEN 'rejected'
           WHEN d.action = 'close' THEN 'closed'
           ELSE 'waiting for review'
       END AS decided_status,
       d.decided_by, d.decided_at, d.note,
       ra.cause AS reattributed_cause
FROM latest_decisions d
LEFT JOIN (
    SELECT report_group_id, cause FROM (
        SELECT report_group_id, cause,
               row_number() OVER (PARTITION BY report_group_id
                                  ORDER BY decided_at DESC, decision_id DESC) AS rk
        FROM minority_decisions_log WHERE action = 'reattribute' AND cause IS NOT NULL
    ) WHERE rk = 1
) ra ON ra.report_group_id = d.report_group_id;

-- One row per live Minority Event: its latest snapshot, with the decisions in force applied.
CREATE OR REPLACE VIEW minority_events AS
SELECT e.* REPLACE (
           coalesce(d.decided_status, e.status) AS status,
           coalesce(d.reattributed_cause, e.cause) AS cause),
       d.decided_by, d.decided_at, d.note AS decision_note
FROM latest_events e
LEFT JOIN event_decisions d ON d.report_group_id = e.report_group_id
WHERE e.status <> 'dissolved';

-- Events waiting for an analyst, most consequential first: more stores, then more absolute
-- excess. `priority` is that rank (1 = first); order by it, as a view's own order is not kept.
CREATE OR REPLACE VIEW review_queue AS
SELECT row_number() OVER (ORDER BY n_stores DESC, abs(sum_excess) DESC, report_group_id) AS priority,
       report_group_id, cause, confidence, confidence_tier, n_stores, n_retailers,
       sum_excess, window_start, window_end, store_id_1, retailer_1, store_id_2, retailer_2
FROM minority_events
WHERE status = 'waiting for review';
