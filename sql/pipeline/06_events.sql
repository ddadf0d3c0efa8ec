-- Stage 6, events: roll the live reports of each cohort up into one Minority Event.

CREATE OR REPLACE TABLE stage_event_members AS
SELECT h.report_group_id, h.group_confidence, h.merged_from,
       i.report_id, i.store_id, i.retailer_id, i.window_start, i.window_end, i.actual_units,
       i.baseline_units, i.excess_units, i.severity, i.top_skus,
       a.cause, a.confidence, a.impact_vector
FROM stage_cohorts h
JOIN stage_report_inputs i ON i.report_id = h.report_id
LEFT JOIN stage_attribution_flat a ON a.report_id = h.report_id;

-- Stores in order of first appearance, each with its retailer: the aligned pairs.
CREATE OR REPLACE TABLE stage_event_stores AS
SELECT report_group_id,
       array_agg(store_id ORDER BY first_start, store_id) AS store_ids,
       array_agg(retailer_id ORDER BY first_start, store_id) AS store_retailers
FROM (
    SELECT report_group_id, store_id, min(retailer_id) AS retailer_id, min(window_start) AS first_start
    FROM stage_event_members GROUP BY report_group_id, store_id
)
GROUP BY report_group_id;

-- The event's cause: the candidate with the most summed confidence over its reports.
CREATE OR REPLACE TABLE stage_event_cause AS
SELECT report_group_id, cause, impact_vector FROM (
    SELECT report_group_id, cause, min(impact_vector) AS impact_vector,
           row_number() OVER (PARTITION BY report_group_id
                              ORDER BY sum(confidence) DESC, cause) AS rk
    FROM stage_event_members WHERE cause IS NOT NULL
    GROUP BY report_group_id, cause
) WHERE rk = 1;

CREATE OR REPLACE TABLE stage_events AS
SELECT m.report_group_id, m.report_ids, m.n_reports, m.n_stores, m.n_retailers,
       s.store_ids, s.store_retailers, m.retailer_ids, m.skus, m.window_start, m.window_end,
       m.sum_actual, m.sum_baseline, m.sum_excess, m.avg_severity, m.max_severity,
       c.cause, c.impact_vector, m.confidence, m.merged_from
FROM (
    SELECT report_group_id,
           array_agg(report_id ORDER BY window_start, report_id) AS report_ids,
           count(*) AS n_reports,
           count(DISTINCT store_id) AS n_stores,
           count(DISTINCT retailer_id) AS n_retailers,
           array_sort(array_distinct(array_agg(retailer_id))) AS retailer_ids,
           array_sort(array_distinct(flatten(array_agg(top_skus)))) AS skus,
           min(window_start) AS window_start,
           CASE WHEN bool_or(window_end IS NULL) THEN NULL ELSE max(window_end) END AS window_end,
           sum(actual_units) AS sum_actual,
           sum(baseline_units) AS sum_baseline,
           sum(excess_units) AS sum_excess,
           avg(severity) AS avg_severity,
           max(severity) AS max_severity,
           max(group_confidence) AS confidence,
           array_sort(array_distinct(flatten(array_agg(merged_from)))) AS merged_from
    FROM stage_event_members
    GROUP BY report_group_id
) m
JOIN stage_event_stores s ON s.report_group_id = m.report_group_id
LEFT JOIN stage_event_cause c ON c.report_group_id = m.report_group_id;
