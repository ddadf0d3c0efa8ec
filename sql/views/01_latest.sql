-- The latest snapshot of each log, by identity. Hydration resolves identity: many rows of one
-- report_id collapse to the one written last (ties broken by run_id, which sorts by time).

CREATE OR REPLACE VIEW latest_detected AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY report_id ORDER BY written_at DESC, run_id DESC) AS rn
    FROM minority_reports_detected_log
) WHERE rn = 1;

CREATE OR REPLACE VIEW latest_ended AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY report_id ORDER BY written_at DESC, run_id DESC) AS rn
    FROM minority_event_ended_log
) WHERE rn = 1;

CREATE OR REPLACE VIEW latest_clustered AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY report_id ORDER BY written_at DESC, run_id DESC) AS rn
    FROM minority_reports_clustered_log
) WHERE rn = 1;

CREATE OR REPLACE VIEW latest_attribution AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY report_id ORDER BY written_at DESC, run_id DESC) AS rn
    FROM minority_reports_proposed_attribution_log
) WHERE rn = 1;

CREATE OR REPLACE VIEW latest_cohort AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY report_id ORDER BY written_at DESC, run_id DESC) AS rn
    FROM minority_reports_cohort_log
) WHERE rn = 1;

CREATE OR REPLACE VIEW latest_events AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY report_group_id ORDER BY written_at DESC, run_id DESC) AS rn
    FROM minority_events_log
) WHERE rn = 1;

-- Rules in force: the latest row of each rule.
CREATE OR REPLACE VIEW automation_rules AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY rule_id ORDER BY written_at DESC) AS rn
    FROM automation_rules_log
) WHERE rn = 1 AND enabled;

-- The decision in force for each event: the latest, analysts' and automation's alike.
CREATE OR REPLACE VIEW latest_decisions AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (
        PARTITION BY report_group_id ORDER BY decided_at DESC, decision_id DESC) AS rn
    FROM minority_decisions_log
) WHERE rn = 1;
