-- Stage 2, end: the authoritative end of each report's window, written once it is known.
INSERT INTO minority_event_ended_log
SELECT d.report_id, d.store_id, d.window_start, d.window_end, rc.run_id, rc.written_at
FROM stage_detected d
CROSS JOIN run_context rc
LEFT JOIN latest_ended e ON e.report_id = d.report_id
WHERE d.window_end IS NOT NULL
  AND (e.report_id IS NULL OR e.window_end <> d.window_end);
