-- Stage 8, event snapshots: the status each event is in after the decisions (event_decisions
-- view), and a snapshot in minority_events_log whenever anything about the event changed.

CREATE OR REPLACE TABLE stage_event_status AS
SELECT e.*,
       coalesce(d.decided_status, 'waiting for review') AS status,
       coalesce(d.reattributed_cause, e.cause) AS final_cause
FROM stage_events e
LEFT JOIN event_decisions d ON d.report_group_id = e.report_group_id;

CREATE OR REPLACE TABLE stage_event_rows AS
SELECT report_group_id, status, report_ids, n_reports, n_stores, n_retailers,
       store_ids[1] AS store_id_1, store_retailers[1] AS retailer_1,
       store_ids[2] AS store_id_2, store_retailers[2] AS retailer_2,
       store_ids[3] AS store_id_3, store_retailers[3] AS retailer_3,
       store_ids[4] AS store_id_4, store_retailers[4] AS retailer_4,
       store_ids[5] AS store_id_5, store_retailers[5] AS retailer_5,
       store_ids[6] AS store_id_6, store_retailers[6] AS retailer_6,
       store_ids[7] AS store_id_7, store_retailers[7] AS retailer_7,
       store_ids[8] AS store_id_8, store_retailers[8] AS retailer_8,
       store_ids[9] AS store_id_9, store_retailers[9] AS retailer_9,
       store_ids[10] AS store_id_10, store_retailers[10] AS retailer_10,
       store_ids[11] AS store_id_11, store_retailers[11] AS retailer_11,
       store_ids[12] AS store_id_12, store_retailers[12] AS retailer_12,
       store_ids[13] AS store_id_13, store_retailers[13] AS retailer_13,
       store_ids[14] AS store_id_14, store_retailers[14] AS retailer_14,
       store_ids, retailer_ids, skus, window_start, window_end,
       sum_actual, sum_baseline, sum_excess, avg_severity, max_severity,
       final_cause AS cause, confidence,
       mrs_confidence_tier(confidence) AS confidence_tier,
       impact_vector, merged_from,
       mrs_content_hash(status, report_ids, store_ids, window_start, window_end, sum_actual,
                        sum_baseline, max_severity, final_cause, confidence) AS content_hash
FROM stage_event_status;

INSERT INTO minority_events_log
SELECT s.*, rc.run_id, rc.written_at
FROM stage_event_rows s
CROSS JOIN run_context rc
LEFT JOIN latest_events l ON l.report_group_id = s.report_group_id
WHERE l.report_group_id IS NULL OR l.content_hash <> s.content_hash;

-- An event whose reports all moved to other events (a merge) or were retracted is dissolved
-- by a snapshot; its history stays.
INSERT INTO minority_events_log
SELECT l.* REPLACE ('dissolved' AS status,
                    mrs_content_hash('dissolved', l.content_hash) AS content_hash,
                    rc.run_id AS run_id, rc.written_at AS written_at)
FROM latest_events l
CROSS JOIN run_context rc
WHERE l.status <> 'dissolved'
  AND l.report_group_id NOT IN (SELECT report_group_id FROM stage_events);
