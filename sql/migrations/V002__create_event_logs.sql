-- V002: events, decisions, automation rules, quarantine and runs (DESIGN §4, §7).

-- One row per event snapshot. Stores and retailers are aligned pairs (store_id_k runs at
-- retailer_k); beyond 14 stores the full lists are in store_ids / retailer_ids.
CREATE EXTERNAL TABLE IF NOT EXISTS minority_events_log (
    report_group_id VARCHAR,
    status VARCHAR,              -- open | auto-confirmed | waiting for review | confirmed | rejected | closed
    report_ids VARCHAR[],
    n_reports BIGINT,
    n_stores BIGINT,
    n_retailers BIGINT,
    store_id_1 VARCHAR, retailer_1 VARCHAR,
    store_id_2 VARCHAR, retailer_2 VARCHAR,
    store_id_3 VARCHAR, retailer_3 VARCHAR,
    store_id_4 VARCHAR, retailer_4 VARCHAR,
    store_id_5 VARCHAR, retailer_5 VARCHAR,
    store_id_6 VARCHAR, retailer_6 VARCHAR,
    store_id_7 VARCHAR, retailer_7 VARCHAR,
    store_id_8 VARCHAR, retailer_8 VARCHAR,
    store_id_9 VARCHAR, retailer_9 VARCHAR,
    store_id_10 VARCHAR, retailer_10 VARCHAR,
    store_id_11 VARCHAR, retailer_11 VARCHAR,
    store_id_12 VARCHAR, retailer_12 VARCHAR,
    store_id_13 VARCHAR, retailer_13 VARCHAR,
    store_id_14 VARCHAR, retailer_14 VARCHAR,
    store_ids VARCHAR[],
    retailer_ids VARCHAR[],
    skus VARCHAR[],
    window_start TIMESTAMP(6) WITH TIME ZONE,
    window_end TIMESTAMP(6) WITH TIME ZONE,     -- NULL while any report is open
    sum_actual DOUBLE,
    sum_baseline DOUBLE,
    sum_excess DOUBLE,
    avg_severity DOUBLE,
    max_severity DOUBLE,
    cause VARCHAR,
    confidence DOUBLE,
    confidence_tier VARCHAR,
    impact_vector VARCHAR,
    merged_from VARCHAR[],
    content_hash VARCHAR,
    run_id VARCHAR,
    written_at TIMESTAMP(6) WITH TIME ZONE
) STORED AS PARQUET LOCATION '${lake}/logs/minority_events_log/';

-- Decisions by analysts (INSERT INTO from the shell, or `mrs decide`) and by automation.
-- action: confirm | reject | reattribute | close | reopen; cause only with reattribute.
CREATE EXTERNAL TABLE IF NOT EXISTS minority_decisions_log (
    decision_id VARCHAR,
    report_group_id VARCHAR,
    action VARCHAR,
    cause VARCHAR,
    note VARCHAR,
    decided_by VARCHAR,
    rule_id VARCHAR,
    decided_at TIMESTAMP(6) WITH TIME ZONE,
    run_id VARCHAR
) STORED AS PARQUET LOCATION '${lake}/logs/minority_decisions_log/';

-- Automation rules are data. The latest row per rule_id is in force; enabled = false retires it.
-- applies_on: weekend | weekday | always. An event is auto-confirmed by the first enabled rule
-- it satisfies unless it is consequential (more stores, more absolute excess, or a cause listed
-- in review_causes), which always goes to an analyst.
CREATE EXTERNAL TABLE IF NOT EXISTS automation_rules_log (
    rule_id VARCHAR,
    description VARCHAR,
    applies_on VARCHAR,
    min_confidence DOUBLE,
    max_stores BIGINT,
    max_abs_excess DOUBLE,
    review_causes VARCHAR[],
    enabled BOOLEAN,
    written_at TIMESTAMP(6) WITH TIME ZONE
) STORED AS PARQUET LOCATION '${lake}/logs/automation_rules_log/';

-- Input rows that could not be used, with the reason; counted in the run summary.
CREATE EXTERNAL TABLE IF NOT EXISTS quarantine_log (
    table_name VARCHAR,
    reason VARCHAR,
    retailer_id VARCHAR,
    store_id VARCHAR,
    sku VARCHAR,
    ts TIMESTAMP(6) WITH TIME ZONE,
    units DOUBLE,
    row_hash VARCHAR,
    run_id VARCHAR,
    written_at TIMESTAMP(6) WITH TIME ZONE
) STORED AS PARQUET LOCATION '${lake}/logs/quarantine_log/';

-- One row per run that changed something (a no-op rerun appends nothing anywhere).
CREATE EXTERNAL TABLE IF NOT EXISTS mrs_runs_log (
    run_id VARCHAR,
    as_of TIMESTAMP(6) WITH TIME ZONE,
    started_at TIMESTAMP(6) WITH TIME ZONE,
    finished_at TIMESTAMP(6) WITH TIME ZONE,
    reports_new BIGINT,
    reports_updated BIGINT,
    reports_ended BIGINT,
    reports_retracted BIGINT,
    events BIGINT,
    auto_confirmed BIGINT,
    waiting_for_review BIGINT,
    quarantined BIGINT,
    written_at TIMESTAMP(6) WITH TIME ZONE
) STORED AS PARQUET LOCATION '${lake}/logs/mrs_runs_log/';
