//! Event lifecycle (issue 5): analyst decisions, automation rules as data, reopening, history and
//! the protection feeds, on `tiny` lakes.

mod common;

use common::{count, one_string, query, run, runtime, strings};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use mrs_pipeline::Lake;
use mrs_pipeline::decisions::{Decision, record};

async fn synth(dir: &std::path::Path, seed: u64) -> Lake {
    common::synth_tiny(dir, seed, None).await
}

async fn status(lake: &Lake, event: &str) -> String {
    one_string(
        lake,
        &format!("SELECT status FROM minority_events WHERE report_group_id = '{event}'"),
    )
    .await
    .expect("event exists")
}

async fn waiting_events(lake: &Lake) -> Vec<String> {
    strings(
        &query(lake, "SELECT report_group_id FROM minority_events WHERE status = 'waiting for review' ORDER BY report_group_id").await,
        0,
    )
    .into_iter()
    .flatten()
    .collect()
}

/// Every live event, in id order: analysts may decide on any of them, whatever automation did.
async fn live_events(lake: &Lake) -> Vec<String> {
    strings(
        &query(
            lake,
            "SELECT report_group_id FROM minority_events ORDER BY report_group_id",
        )
        .await,
        0,
    )
    .into_iter()
    .flatten()
    .collect()
}

async fn decide(lake: &Lake, event: &str, action: &str, cause: Option<&str>) {
    record(
        lake,
        &Decision {
            event_id: event,
            action,
            cause,
            note: "test",
            decided_by: "analyst-test",
        },
    )
    .await
    .expect("decision");
}

#[test]
fn analyst_decisions_drive_status_cause_and_feeds() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = synth(dir.path(), 3).await;
        run(&lake, None).await;
        let events = live_events(&lake).await;
        assert!(events.len() >= 3, "need three events, got {events:?}");
        let (confirmed, rejected, reattributed) = (&events[0], &events[1], &events[2]);

        // Confirm: shows at once in the hydrated view, then in the log and the MMM feed.
        decide(&lake, confirmed, "confirm", None).await;
        assert_eq!(status(&lake, confirmed).await, "confirmed");
        // Reject.
        decide(&lake, rejected, "reject", None).await;
        assert_eq!(status(&lake, rejected).await, "rejected");
        // Re-attribute: the analyst's cause overrides the model's.
        let model_cause = one_string(&lake, &format!("SELECT cause FROM minority_events WHERE report_group_id = '{reattributed}'")).await;
        let new_cause = if model_cause.as_deref() == Some("Data Error") { "Competitor Stockout" } else { "Data Error" };
        decide(&lake, reattributed, "reattribute", Some(new_cause)).await;
        assert_eq!(
            one_string(&lake, &format!("SELECT cause FROM minority_events WHERE report_group_id = '{reattributed}'")).await.as_deref(),
            Some(new_cause)
        );
        assert_eq!(status(&lake, reattributed).await, "confirmed");

        let summary = run(&lake, None).await;
        assert_eq!(summary.events_changed, 3, "{summary}");
        for (event, expected) in [(confirmed, "confirmed"), (rejected, "rejected"), (reattributed, "confirmed")] {
            let logged = one_string(&lake, &format!("SELECT status FROM latest_events WHERE report_group_id = '{event}'")).await;
            assert_eq!(logged.as_deref(), Some(expected));
        }
        let logged_cause = one_string(&lake, &format!("SELECT cause FROM latest_events WHERE report_group_id = '{reattributed}'")).await;
        assert_eq!(logged_cause.as_deref(), Some(new_cause));
        // The model's own proposal stays in its log: the override is a decision, not a rewrite.
        let model_rows = count(&lake, &format!(
            "SELECT count(*) FROM minority_reports_proposed_attribution_log a JOIN latest_cohort c ON c.report_id = a.report_id \
             WHERE c.report_group_id = '{reattributed}' AND a.cause = '{new_cause}' AND a.written_at > (SELECT min(written_at) FROM minority_reports_proposed_attribution_log)"
        )).await;
        assert_eq!(model_rows, 0);

        // Feeds: confirmed cells are replaced by baseline, rejected events protect nothing.
        let confirmed_cells = count(&lake, &format!("SELECT count(*) FROM mmm_protection WHERE event_id = '{confirmed}' AND action = 'replace_by_baseline'")).await;
        assert!(confirmed_cells > 0);
        let rejected_cells = count(&lake, &format!("SELECT count(*) FROM mmm_protection WHERE event_id = '{rejected}'")).await;
        assert_eq!(rejected_cells, 0);
        let protected = count(&lake, &format!("SELECT count(*) FROM protected_sales WHERE protected AND event_id = '{confirmed}'")).await;
        assert!(protected > 0, "protected_sales replaces the confirmed event's cells");

        // Close, then reopen by hand.
        decide(&lake, confirmed, "close", None).await;
        assert_eq!(status(&lake, confirmed).await, "closed");
        decide(&lake, confirmed, "reopen", None).await;
        assert_eq!(status(&lake, confirmed).await, "waiting for review");

        // History: what we believed before the decisions is still in the log.
        let history = count(&lake, &format!(
            "SELECT count(DISTINCT status) FROM minority_events_log WHERE report_group_id = '{confirmed}'"
        )).await;
        assert!(history >= 2, "the log keeps every status the event went through");
    });
}

#[test]
fn a_closed_event_reopens_when_new_reports_join() {
    runtime().block_on(async {
        // Find, in a full run, an event whose reports start at different buckets.
        let full_dir = tempfile::tempdir().expect("tempdir");
        let full = synth(full_dir.path(), 3).await;
        run(&full, None).await;
        let b = query(&full, "SELECT report_group_id, \
            arrow_cast(max(window_start), 'Int64') AS last_start, arrow_cast(min(window_start), 'Int64') AS first_start \
            FROM minority_reports GROUP BY report_group_id \
            HAVING count(*) >= 2 AND max(window_start) > min(window_start) ORDER BY report_group_id").await;
        let events = strings(&b, 0);
        assert!(!events.is_empty(), "tiny seed 3 has an event that grows");
        let last_start = b[0].column(1).as_primitive::<Int64Type>().value(0);
        let full_event = events[0].clone().expect("id");

        // Replay: run before the last report starts, close the event, then run on all data.
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = synth(dir.path(), 3).await;
        // A microsecond unit: timestamps are cast to Int64 microseconds above.
        run(&lake, Some(last_start)).await;
        // The event as it stood then: the group of its reports that already existed (its id
        // is its founding report's; a report with the same start that is only alerted later
        // may found the full run's group, so the ids of the two lakes can differ).
        let members = strings(
            &query(
                &full,
                &format!(
                    "SELECT report_id FROM minority_reports WHERE report_group_id = '{full_event}'"
                ),
            )
            .await,
            0,
        );
        let list = members
            .iter()
            .flatten()
            .map(|m| format!("'{m}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let event = one_string(
            &lake,
            &format!(
                "SELECT report_group_id FROM minority_reports WHERE report_id IN ({list}) \
                 ORDER BY window_start, report_id LIMIT 1"
            ),
        )
        .await
        .expect("the event exists before its last report");
        let before = count(&lake, &format!("SELECT count(*) FROM minority_reports WHERE report_group_id = '{event}'")).await;
        assert!(before >= 1, "the event exists before its last report");
        decide(&lake, &event, "close", None).await;
        run(&lake, Some(last_start)).await;
        assert_eq!(status(&lake, &event).await, "closed");
        run(&lake, None).await;
        let after = count(&lake, &format!("SELECT count(*) FROM minority_reports WHERE report_group_id = '{event}'")).await;
        assert!(after > before);
        assert_eq!(status(&lake, &event).await, "waiting for review");
        let reopen = one_string(&lake, &format!(
            "SELECT rule_id FROM minority_decisions_log WHERE report_group_id = '{event}' AND action = 'reopen'"
        )).await;
        assert_eq!(reopen.as_deref(), Some("reopen-on-new-reports"));
    });
}

#[test]
fn automation_rules_are_data() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = synth(dir.path(), 5).await;
        run(&lake, None).await;
        // Every automated confirmation names a rule whose conditions hold; consequential events
        // (more stores or excess than the rule allows, or a review cause) are never auto-confirmed.
        let violations = count(&lake, "SELECT count(*) FROM minority_decisions_log d \
            JOIN latest_events e ON e.report_group_id = d.report_group_id \
            JOIN automation_rules r ON r.rule_id = d.rule_id \
            WHERE d.decided_by = 'automation' AND d.action = 'confirm' AND \
            (e.confidence <= r.min_confidence OR e.n_stores > r.max_stores OR abs(e.sum_excess) > r.max_abs_excess \
             OR array_has(r.review_causes, e.cause))").await;
        assert_eq!(violations, 0);

        // Rules are data. On a second copy of the lake two rows retire the default rules before
        // its first run, so every event waits for review (whatever confidence the model gives)...
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = synth(dir.path(), 5).await;
        let ctx = mrs_pipeline::open_session(&lake, None).await.expect("session");
        ctx.sql("INSERT INTO automation_rules_log VALUES \
                 ('weekend-70', 'test: retired', 'weekend', 0.70, 10, 5000.0, make_array('Data Error'), false, now()), \
                 ('weekday-85', 'test: retired', 'weekday', 0.85, 10, 5000.0, make_array('Data Error'), false, now())")
            .await.expect("plan").collect().await.expect("retire the default rules");
        let first = run(&lake, None).await;
        assert_eq!(first.auto_confirmed, 0, "{first}");
        let waiting = waiting_events(&lake).await;
        assert!(!waiting.is_empty());
        // ... and one more row, a new rule, auto-confirms them on the next run.
        let ctx = mrs_pipeline::open_session(&lake, None).await.expect("session");
        ctx.sql("INSERT INTO automation_rules_log VALUES ('always-any', 'test: confirm everything small', 'always', \
                 -1.0, 1000, 1e12, make_array('none'), true, now())")
            .await.expect("plan").collect().await.expect("insert rule");
        let summary = run(&lake, None).await;
        assert_eq!(summary.auto_confirmed as usize, waiting.len(), "{summary}");
        for event in &waiting {
            assert_eq!(status(&lake, event).await, "auto-confirmed");
        }
        let rule = one_string(&lake, &format!(
            "SELECT rule_id FROM minority_decisions_log WHERE report_group_id = '{}' AND decided_by = 'automation'", waiting[0]
        )).await;
        assert_eq!(rule.as_deref(), Some("always-any"));
    });
}

/// Reads the feeds with pyarrow, as a marketing-mix tool would. The test set-up installs pyarrow
/// from PyPI into a virtual environment beside the build (reused between runs).
#[test]
fn an_outside_reader_gets_the_protection_feeds() {
    let python = python_with_pyarrow();
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = synth(dir.path(), 3).await;
        run(&lake, None).await;
        let events = live_events(&lake).await;
        decide(&lake, &events[0], "confirm", None).await;
        run(&lake, None).await;
        let expect_mmm = count(&lake, "SELECT count(*) FROM mmm_protection").await;
        let expect_bandit = count(&lake, "SELECT count(*) FROM bandit_masks").await;
        let expect_sales = count(&lake, "SELECT count(*) FROM protected_sales").await;
        let expect_replaced = query(
            &lake,
            "SELECT sum(units) FROM protected_sales WHERE protected",
        )
        .await;
        let expect_replaced = cast(expect_replaced[0].column(0), &DataType::Float64).expect("cast");
        let expect_replaced = expect_replaced.as_primitive::<Float64Type>().value(0);
        assert!(expect_mmm > 0 && expect_bandit > 0 && expect_sales > 0);

        let script = r#"
import sys, pyarrow.parquet as pq, pyarrow.compute as pc
root = sys.argv[1]
mmm = pq.read_table(root + "/protection/mmm_protection")
bandit = pq.read_table(root + "/protection/bandit_masks")
sales = pq.read_table(root + "/protection/protected_sales")
replaced = pc.sum(pc.filter(sales["units"], sales["protected"])).as_py()
confirmed = pc.sum(pc.equal(mmm["action"], "replace_by_baseline")).as_py()
print(mmm.num_rows, bandit.num_rows, sales.num_rows, replaced, confirmed)
"#;
        let out = std::process::Command::new(&python)
            .args(["-c", script, dir.path().to_str().expect("utf-8")])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(fields[0].parse::<i64>().ok(), Some(expect_mmm));
        assert_eq!(fields[1].parse::<i64>().ok(), Some(expect_bandit));
        assert_eq!(fields[2].parse::<i64>().ok(), Some(expect_sales));
        let replaced: f64 = fields[3].parse().expect("float");
        assert!((replaced - expect_replaced).abs() < 1e-6 * expect_replaced.abs().max(1.0));
        assert!(
            fields[4].parse::<i64>().expect("int") > 0,
            "the confirmed event's cells are in the feed"
        );
    });
}

fn python_with_pyarrow() -> std::path::PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let venv = base.join("mrs-pyenv");
    let python = venv.join("bin/python");
    let ready = std::process::Command::new(&python)
        .args(["-c", "import pyarrow"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let ok = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "python3 -m venv failed");
        let ok = std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "pyarrow"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "pip install pyarrow failed");
    }
    python
}
