//! The whole pipeline on the `tiny` preset, asserting on the logs' contents (issue 2).
//!
//! One lake is synthesised and run once per test binary (a shared fixture), a second lake from
//! the same seed checks that identity does not depend on the lake.

use std::collections::BTreeMap;
use std::sync::OnceLock;

mod common;

use common::{count, micros, query, run, runtime, strings, synth_tiny};
use datafusion::arrow::util::pretty::pretty_format_batches;
use mrs_pipeline::{Lake, RunOptions, RunSummary};

struct Fixture {
    _dir: tempfile::TempDir,
    lake: Lake,
    first: RunSummary,
}

async fn synth_and_run(dir: &std::path::Path, seed: u64) -> (Lake, RunSummary) {
    let lake = synth_tiny(dir, seed, None).await;
    let summary = run(&lake, None).await;
    (lake, summary)
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lake, first) = runtime().block_on(synth_and_run(dir.path(), 7));
        Fixture {
            _dir: dir,
            lake,
            first,
        }
    })
}

#[test]
fn the_pipeline_finds_reports_and_events() {
    let f = fixture();
    assert!(f.first.reports_new > 0, "{}", f.first);
    assert!(f.first.events > 0, "{}", f.first);
    assert!(f.first.rows_appended > 0);
}

#[test]
fn report_ids_follow_the_design_formula() {
    let f = fixture();
    runtime().block_on(async {
        let b = query(
            &f.lake,
            "SELECT report_id, store_id, window_start FROM minority_reports_detected_log",
        )
        .await;
        let ids = strings(&b, 0);
        let stores = strings(&b, 1);
        let starts = micros(&b, 2);
        assert!(!ids.is_empty());
        for i in 0..ids.len() {
            let store = stores[i].as_deref().expect("store_id");
            let start = starts[i].expect("window_start");
            // DESIGN §3, spelled out here rather than through mrs_core so a change there fails.
            let ts = chrono::DateTime::from_timestamp_micros(start)
                .expect("in range")
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let expected = format!(
                "MR-{}",
                blake3::hash(format!("{store}|{ts}").as_bytes()).to_hex()
            );
            assert_eq!(ids[i].as_deref(), Some(expected.as_str()));
        }
    });
}

#[test]
fn a_second_run_over_unchanged_input_appends_nothing() {
    let f = fixture();
    runtime().block_on(async {
        let hydrated = |lake: Lake| async move {
            let r = query(&lake, "SELECT * EXCLUDE (detected_at) FROM minority_reports ORDER BY report_id").await;
            let e = query(&lake, "SELECT * EXCLUDE (run_id, written_at) FROM minority_events ORDER BY report_group_id").await;
            (
                pretty_format_batches(&r).expect("format").to_string(),
                pretty_format_batches(&e).expect("format").to_string(),
            )
        };
        let before = hydrated(f.lake.clone()).await;
        let second = mrs_pipeline::run(&f.lake, &RunOptions::default()).await.expect("second run");
        assert_eq!(second.rows_appended, 0, "{second}");
        assert_eq!(second.reports_new, 0);
        let after = hydrated(f.lake.clone()).await;
        assert_eq!(before, after);
    });
}

#[test]
fn the_same_input_gives_the_same_ids_in_another_lake() {
    let f = fixture();
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (other, _) = synth_and_run(dir.path(), 7).await;
        let sql =
            "SELECT report_id, report_group_id, cause FROM minority_reports ORDER BY report_id";
        let a = pretty_format_batches(&query(&f.lake, sql).await)
            .expect("format")
            .to_string();
        let b = pretty_format_batches(&query(&other, sql).await)
            .expect("format")
            .to_string();
        assert_eq!(a, b);
    });
}

#[test]
fn window_end_is_null_while_open_and_set_once_ended() {
    let f = fixture();
    runtime().block_on(async {
        let open_with_end = count(
            &f.lake,
            "SELECT count(*) FROM latest_detected WHERE status = 'open' AND window_end IS NOT NULL",
        )
        .await;
        assert_eq!(open_with_end, 0);
        let ended_without_end = count(
            &f.lake,
            "SELECT count(*) FROM latest_detected WHERE status = 'ended' AND window_end IS NULL",
        )
        .await;
        assert_eq!(ended_without_end, 0);
        let ended = count(
            &f.lake,
            "SELECT count(*) FROM latest_detected WHERE status = 'ended'",
        )
        .await;
        assert!(ended > 0, "some report of a 35-day lake has ended");
        let ended_logged = count(
            &f.lake,
            "SELECT count(*) FROM latest_detected d JOIN minority_event_ended_log e \
             ON e.report_id = d.report_id AND e.window_end = d.window_end WHERE d.status = 'ended'",
        )
        .await;
        assert_eq!(
            ended, ended_logged,
            "every ended report has its authoritative end"
        );
    });
}

#[test]
fn second_and_third_candidates_are_filled() {
    let f = fixture();
    runtime().block_on(async {
        let total = count(&f.lake, "SELECT count(*) FROM latest_attribution").await;
        let with_2 = count(&f.lake, "SELECT count(*) FROM latest_attribution WHERE cause_2 IS NOT NULL AND confidence_2 IS NOT NULL").await;
        let with_3 = count(&f.lake, "SELECT count(*) FROM latest_attribution WHERE cause_3 IS NOT NULL AND confidence_3 IS NOT NULL").await;
        assert!(total > 0);
        assert_eq!(with_2, total);
        assert_eq!(with_3, total);
        let ordered = count(&f.lake, "SELECT count(*) FROM latest_attribution WHERE confidence < confidence_2 OR confidence_2 < confidence_3 OR cause = cause_2 OR cause_2 = cause_3").await;
        assert_eq!(ordered, 0, "candidates are distinct and ranked");
    });
}

#[test]
fn events_carry_aligned_store_and_retailer_pairs() {
    let f = fixture();
    runtime().block_on(async {
        let stores = query(&f.lake, "SELECT store_id, retailer_id FROM stores").await;
        let retailer_of: BTreeMap<String, String> = strings(&stores, 0)
            .into_iter()
            .zip(strings(&stores, 1))
            .filter_map(|(s, r)| Some((s?, r?)))
            .collect();
        let mut cols = Vec::new();
        for k in 1..=14 {
            cols.push(format!("store_id_{k}"));
            cols.push(format!("retailer_{k}"));
        }
        let b = query(
            &f.lake,
            &format!("SELECT n_stores, {} FROM minority_events", cols.join(", ")),
        )
        .await;
        assert!(!b.is_empty());
        let n_stores: Vec<Option<String>> = strings(&b, 0);
        for (row, n) in n_stores.iter().enumerate() {
            let n: usize = n.as_deref().expect("n_stores").parse().expect("int");
            for k in 0..14 {
                let store = &strings(&b, 1 + 2 * k)[row];
                let retailer = &strings(&b, 2 + 2 * k)[row];
                if k < n.min(14) {
                    let store = store.as_ref().expect("store present");
                    assert_eq!(
                        retailer.as_ref(),
                        retailer_of.get(store),
                        "pair {} of row {row}",
                        k + 1
                    );
                } else {
                    assert!(store.is_none() && retailer.is_none());
                }
            }
        }
    });
}

#[test]
fn eval_reports_the_documented_keys() {
    let f = fixture();
    runtime().block_on(async {
        let report = mrs_eval::evaluate_lake(&f.lake).await.expect("eval");
        let json = serde_json::to_value(&report).expect("json");
        for key in [
            "recall",
            "precision",
            "f1",
            "median_delay_buckets",
            "recall_magnitude_ge_3",
        ] {
            assert!(json["detection"].get(key).is_some(), "detection.{key}");
        }
        for key in ["top1", "top3", "per_cause"] {
            assert!(json["attribution"].get(key).is_some(), "attribution.{key}");
        }
        assert!(json["cohort"].get("pairwise_precision").is_some());
        assert!(json["cohort"].get("pairwise_recall").is_some());
        assert!(report.detection.truth_anomalies > 0);
        assert!(report.detection.reports > 0);
    });
}
