-- Stage 7, automation: rules are data (automation_rules). An event nobody has decided on yet is
-- auto-confirmed by the first rule it satisfies (weekend or weekday mode from the run's as_of
-- day); consequential events never are, they wait for an analyst. A closed event that new
-- reports join is reopened. Every automated decision names its rule. Decision ids come from
-- what is decided, not from the run, so a run that was killed and rerun writes the same ids.

INSERT INTO minority_decisions_log
SELECT mrs_content_hash('automation', x.report_group_id, x.rule_id) AS decision_id,
       x.report_group_id, 'confirm' AS action, CAST(NULL AS VARCHAR) AS cause,
       'auto-confirmed by rule ' || x.rule_id || ': ' || x.description
           || ' (confidence ' || CAST(round(x.confidence * 100) AS VARCHAR) || '%)' AS note,
       'automation' AS decided_by, x.rule_id, x.written_at AS decided_at, x.run_id
FROM (
    SELECT e.report_group_id, e.confidence, r.rule_id, r.description, rc.run_id, rc.written_at,
           row_number() OVER (PARTITION BY e.report_group_id ORDER BY r.rule_id) AS rk
    FROM stage_events e
    CROSS JOIN run_context rc
    JOIN automation_rules r
      ON r.applies_on = 'always'
      OR (r.applies_on = 'weekend' AND rc.weekend)
      OR (r.applies_on = 'weekday' AND NOT rc.weekend)
    WHERE e.confidence > r.min_confidence
      AND e.n_stores <= r.max_stores
      AND abs(e.sum_excess) <= r.max_abs_excess
      AND NOT array_has(coalesce(r.review_causes, make_array('')), coalesce(e.cause, ''))
) x
WHERE x.rk = 1
  AND x.report_group_id NOT IN (
      SELECT report_group_id FROM minority_decisions_log WHERE report_group_id IS NOT NULL);

INSERT INTO minority_decisions_log
SELECT mrs_content_hash('reopen', e.report_group_id, d.decision_id) AS decision_id,
       e.report_group_id, 'reopen' AS action, CAST(NULL AS VARCHAR) AS cause,
       'reopened: ' || CAST(e.n_reports - le.n_reports AS VARCHAR) || ' new report(s) joined after close' AS note,
       'automation' AS decided_by, 'reopen-on-new-reports' AS rule_id,
       rc.written_at AS decided_at, rc.run_id
FROM stage_events e
CROSS JOIN run_context rc
JOIN latest_decisions d ON d.report_group_id = e.report_group_id
JOIN latest_events le ON le.report_group_id = e.report_group_id
WHERE d.action = 'close' AND e.n_reports > le.n_reports;
