-- V005: the exact-multiple evidence of a report's cell values (`dq_multiple_evidence`,
-- mrs-detect 0.6): how unlikely by chance so many of them are multiples of 2, 3, 10, 100 or
-- 1000 (duplicated feeds, unit slips). Snapshots written before this migration read it as NULL.
CREATE OR REPLACE EXTERNAL TABLE minority_reports_detected_log (
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
    written_at TIMESTAMP(6) WITH TIME ZONE,
    alerted_at TIMESTAMP(6) WITH TIME ZONE,      -- the bucket whose arrival made the window a report
    dq_multiple_evidence DOUBLE                  -- -log10 chance of the window's exact multiples
) STORED AS PARQUET LOCATION '${lake}/logs/minority_reports_detected_log/';
