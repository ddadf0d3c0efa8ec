-- Stage 5, cohort: the reports of one underlying event share a report_group_id (a Minority
-- Event). Ids come from each event's founding report, so they stay stable as events grow; a
-- merge keeps the earliest founder's id and records the others in merged_from. Each report's
-- four leading SKUs (by absolute excess, in that order: the first is the report's lead) count for
-- SKU agreement: on the training lakes all five lowered precision and two lowered recall (README
-- "Cohorts").
CREATE OR REPLACE TABLE stage_cohorts AS
SELECT c['report_id'] AS report_id, c['report_group_id'] AS report_group_id,
       c['group_size'] AS group_size, c['group_confidence'] AS group_confidence,
       c['founding_report_id'] AS founding_report_id, c['merged_from'] AS merged_from
FROM (
    SELECT unnest(mrs_cohort(i.report_id, c.cluster_id, i.window_start, i.window_last, a.cause,
                             a.confidence, i.store_id, i.retailer_id,
                             array_slice(i.top_skus, 1, 4),
                             prev.report_group_id)) AS c
    FROM stage_report_inputs i
    LEFT JOIN stage_clusters c ON c.report_id = i.report_id
    LEFT JOIN stage_attribution_flat a ON a.report_id = i.report_id
    LEFT JOIN latest_cohort prev ON prev.report_id = i.report_id
);

-- merged_from is lineage recorded when a merge happens; it is left out of the hash so that an
-- unchanged rerun appends nothing.
INSERT INTO minority_reports_cohort_log
SELECT c.report_id, c.report_group_id, c.group_size, c.group_confidence, c.founding_report_id,
       c.merged_from, c.content_hash, rc.run_id, rc.written_at
FROM (
    SELECT s.*, mrs_content_hash(s.report_group_id, s.group_size, s.group_confidence,
                                 s.founding_report_id) AS content_hash
    FROM stage_cohorts s
) c
CROSS JOIN run_context rc
LEFT JOIN latest_cohort l ON l.report_id = c.report_id
WHERE l.report_id IS NULL OR l.content_hash <> c.content_hash;
