-- V001: the per-report logs of DESIGN §4. Append-only: stages write them only with INSERT INTO,
-- which adds new Parquet files. Every row is a snapshot carrying the run that wrote it.
-- `${lake}` is the lake URL, substituted by the runner and the shell.

-- One snapshot per report each time its detection changes (severity, window, totals).
CREATE EXTERNAL TABLE IF NOT EXISTS minority_reports_detected_log (
    report_id VARCHAR,
    store_id VARCHAR,
    retailer_id VARCHAR,
    region VARCHAR,
    status VARCHAR,                              -- open | ended | retracted
    window_start TIMESTAMP(6) WITH TIME ZONE,    -- = first_detected_from
    window_end TIMESTAMP(6) WITH TIME ZONE,      -- exclusive; NULL while open
    last_anomalous_ts TIMESTAMP(6) WITH TIME ZONE,
    peak_ts TIMESTAMP(6) WITH TIME ZONE,
    direction VARCHAR,                           -- spike | drop
    severity DOUBLE,                             -- [0, 1]
    anomalous_buckets BIGINT,
    actual_units DOUBLE,
    baseline_units DOUBLE,
    excess_units DOUBLE,
    noise_units DOUBLE,
    magnitude DOUBLE,                            -- excess / noise
    affected_skus BIGINT,
    total_skus BIGINT,
    top_skus VARCHAR[],
    sku_evidence STRUCT<sku VARCHAR, actual DOUBLE, baseline DOUBLE, excess DOUBLE, peak_score DOUBLE>[],
    profile STRUCT<ts TIMESTAMP(6) WITH TIME ZONE, actual DOUBLE, baseline DOUBLE>[],
    dq_ratio DOUBLE,
    dq_integer_multiple_share DOUBLE,
    dq_zero_share DOUBLE,
    dq_catchup DOUBLE,
    dq_stuck_share DOUBLE,
    dq_negative_count BIGINT,
    detector_version VARCHAR,
    content_hash VARCHAR,
    run_id VARCHAR,
    written_at TIMESTAMP(6) WITH TIME ZONE
) STORED AS PARQUET LOCATION '${lake}/logs/minority_reports_detected_log/';

-- The authoritative end of a report's window.
CREATE EXTERNAL TABLE IF NOT EXISTS minority_event_ended_log (
    report_id VARCHAR,
    store_id VARCHAR,
    window_start TIMESTAMP(6) WITH TIME ZONE,
    window_end TIMESTAMP(6) WITH TIME ZONE,
    run_id VARCHAR,
    written_at TIMESTAMP(6) WITH TIME ZONE
) STORED AS PARQUET LOCATION '${lake}/logs/minority_event_ended_log/';

-- Cluster assignment and neighbourhood of each report.
CREATE EXTERNAL TABLE IF NOT EXISTS minority_reports_clustered_log (
    report_id VARCHAR,
    cluster_id VARCHAR,
    cluster_size BIGINT,
    is_core BOOLEAN,
    core_distance DOUBLE,
    cluster_stores BIGINT,
    cluster_retailers BIGINT,
    spread_km DOUBLE,
    co_sku_stores BIGINT,
    co_sku_retailers BIGINT,
    co_retailer_reports BIGINT,
    co_category_other_retailer_nearby BIGINT,
    clustering_version VARCHAR,
    content_hash VARCHAR,
    run_id VARCHAR,
    written_at TIMESTAMP(6) WITH TIME ZONE
) STORED AS PARQUET LOCATION '${lake}/logs/minority_reports_clustered_log/';

-- Proposed causes: the best candidate, then the second and third in fixed _2/_3 columns.
CREATE EXTERNAL TABLE IF NOT EXISTS minority_reports_proposed_attribution_log (
    report_id VARCHAR,
    cause VARCHAR,
    narrative VARCHAR,
    confidence DOUBLE,
    confidence_tier VARCHAR,
    impact_vector VARCHAR,
    cause_2 VARCHAR,
    confidence_2 DOUBLE,
    cause_3 VARCHAR,
    confidence_3 DOUBLE,
    evidence STRUCT<feature VARCHAR, value DOUBLE, favours VARCHAR, weight DOUBLE>[],
    localisation STRUCT<dimension VARCHAR, value VARCHAR, share DOUBLE>[],
    model_version VARCHAR,
    content_hash VARCHAR,
    run_id VARCHAR,
    written_at TIMESTAMP(6) WITH TIME ZONE
) STORED AS PARQUET LOCATION '${lake}/logs/minority_reports_proposed_attribution_log/';

-- Cohort (Minority Event) membership of each report, with lineage of merged events.
CREATE EXTERNAL TABLE IF NOT EXISTS minority_reports_cohort_log (
    report_id VARCHAR,
    report_group_id VARCHAR,
    group_size BIGINT,
    group_confidence DOUBLE,
    founding_report_id VARCHAR,
    merged_from VARCHAR[],
    content_hash VARCHAR,
    run_id VARCHAR,
    written_at TIMESTAMP(6) WITH TIME ZONE
) STORED AS PARQUET LOCATION '${lake}/logs/minority_reports_cohort_log/';
