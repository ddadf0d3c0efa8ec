//! When an incremental run resumes a store from its detector checkpoint, and when it must
//! detect it from the whole history instead (README "Incremental runs"). Every case ends with
//! `--full` changing no report: whichever way a run went, its detection is that of a full
//! recompute. (Later stages are compared in `tests/replay.rs`; here a changed input may still
//! move cohorts on the next run, whose groups carry over from the previous one by design.)

mod common;
#[path = "common/state.rs"]
mod state;

use common::{count, one_string, runtime, synth_tiny, write_tiny};
use mrs_pipeline::decisions::{Decision, record};
use mrs_pipeline::{Lake, RunOptions, RunSummary};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
/// First bucket of every synthetic lake (2025-06-02T00:00:00Z).
const START: i64 = 1_748_822_400_000_000;

fn run(lake: &Lake, options: &RunOptions) -> RunSummary {
    runtime()
        .block_on(mrs_pipeline::run(lake, options))
        .expect("run")
}

fn assert_full_recompute_agrees(lake: &Lake) {
    let full = run(
        lake,
        &RunOptions {
            full: true,
            ..RunOptions::default()
        },
    );
    assert_eq!(full.stores_resumed, 0);
    assert_eq!(
        (
            full.reports_new,
            full.reports_updated,
            full.reports_ended,
            full.reports_retracted
        ),
        (0, 0, 0, 0),
        "{full:?}"
    );
}

/// A tiny lake up to day 30, run, then one more day delivered.
fn lake_with_checkpoint(dir: &std::path::Path) -> (Lake, i64) {
    let lake = runtime().block_on(synth_tiny(dir, 5, Some(START + 30 * DAY)));
    let first = run(&lake, &RunOptions::default());
    assert_eq!(first.stores_resumed, 0, "no checkpoint yet");
    runtime().block_on(write_tiny(&lake, 5, Some(START + 31 * DAY)));
    let stores = runtime().block_on(count(&lake, "SELECT count(*) FROM stores"));
    (lake, stores)
}

#[test]
fn new_deliveries_resume_every_store_from_a_bounded_look_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lake, stores) = lake_with_checkpoint(dir.path());
    let total = runtime().block_on(count(&lake, "SELECT count(*) FROM sales"));
    let s = run(&lake, &RunOptions::default());
    assert_eq!(s.stores_resumed, stores, "{s:?}");
    // four weeks, eight hours and a day of the 31 days
    assert!(s.detection_rows * 31 <= total * 30, "{s:?} of {total}");
    // nothing new: everything resumes and nothing is appended
    let again = run(&lake, &RunOptions::default());
    assert_eq!((again.stores_resumed, again.rows_appended), (stores, 0));
    assert_full_recompute_agrees(&lake);
}

#[test]
fn a_changed_holiday_table_or_a_removed_file_sends_every_store_back_to_its_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lake, _) = lake_with_checkpoint(dir.path());
    run(&lake, &RunOptions::default());
    // a holiday added in the past
    let ctx = datafusion::prelude::SessionContext::new();
    runtime().block_on(async {
        ctx.sql(&format!(
            "COPY (SELECT DATE '2025-06-20' AS day, arrow_cast(NULL, 'Utf8') AS region, \
             arrow_cast('Extra', 'Utf8') AS name) \
             TO '{}/input/holidays/zz-extra.parquet' STORED AS PARQUET",
            dir.path().display()
        ))
        .await
        .expect("plan")
        .collect()
        .await
        .expect("copy");
    });
    let s = run(&lake, &RunOptions::default());
    assert_eq!(s.stores_resumed, 0, "{s:?}");
    assert_full_recompute_agrees(&lake);
    // a sales file removed
    let resumed = run(&lake, &RunOptions::default());
    assert!(resumed.stores_resumed > 0);
    let mut files: Vec<_> = walk(&dir.path().join("input/sales"));
    files.sort();
    std::fs::remove_file(&files[files.len() / 2]).expect("remove");
    let s = run(&lake, &RunOptions::default());
    assert_eq!(s.stores_resumed, 0, "{s:?}");
    assert_full_recompute_agrees(&lake);
}

#[test]
fn replaying_before_what_the_checkpoint_saw_does_not_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lake, stores) = lake_with_checkpoint(dir.path());
    run(&lake, &RunOptions::default());
    let s = run(
        &lake,
        &RunOptions {
            as_of_micros: Some(START + 30 * DAY + 5 * HOUR),
            ..RunOptions::default()
        },
    );
    assert_eq!(s.stores_resumed, 0, "{s:?}");
    // forward again: the checkpoint the --as-of run wrote is behind the data, so it resumes
    let s = run(&lake, &RunOptions::default());
    assert_eq!(s.stores_resumed, stores, "{s:?}");
    assert_full_recompute_agrees(&lake);
}

#[test]
fn resetting_the_logs_sends_every_store_back_to_its_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lake, _) = lake_with_checkpoint(dir.path());
    run(&lake, &RunOptions::default());
    let reports = runtime().block_on(count(&lake, "SELECT count(*) FROM minority_reports"));
    assert!(reports > 0);
    // A rerun from scratch that keeps state/ (logs and meta removed): the checkpoint is ahead
    // of the logs, so it must not be used, or the reports before it would be lost.
    std::fs::remove_dir_all(dir.path().join("logs")).expect("rm logs");
    std::fs::remove_dir_all(dir.path().join("meta")).expect("rm meta");
    let s = run(&lake, &RunOptions::default());
    assert_eq!(s.stores_resumed, 0, "{s:?}");
    let again = runtime().block_on(count(&lake, "SELECT count(*) FROM minority_reports"));
    assert_eq!(again, reports);
}

/// Runs `--full` (every feed day rewritten) and checks the feed files equal what the
/// incremental runs left.
fn assert_full_rewrite_agrees(lake: &Lake, days: i64) {
    let incremental = runtime().block_on(state::feed_files(lake));
    let full = run(
        lake,
        &RunOptions {
            full: true,
            ..RunOptions::default()
        },
    );
    assert_eq!(full.feed_days_written, days, "{full:?}");
    state::assert_same(&incremental, &runtime().block_on(state::feed_files(lake)));
}

#[test]
fn the_protected_sales_feed_rewrites_the_changed_days_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lake, _) = lake_with_checkpoint(dir.path());
    // One new day of sales (and the days of the replaced cells that changed with it).
    let s = run(&lake, &RunOptions::default());
    assert!(
        (1..31).contains(&s.feed_days_written),
        "{} of 31 days rewritten",
        s.feed_days_written
    );
    assert_full_rewrite_agrees(&lake, 31);
    let again = run(&lake, &RunOptions::default());
    assert_eq!(again.feed_days_written, 0, "nothing changed: {again:?}");

    // An analyst confirms an event waiting for review (its cells become replaced) and rejects
    // a confirmed one (its cells are no longer replaced).
    let event = |sql: &str| runtime().block_on(one_string(&lake, sql));
    let waiting = event(
        "SELECT report_group_id FROM minority_events WHERE status = 'waiting for review' \
         ORDER BY window_start, report_group_id LIMIT 1",
    );
    let confirmed = event(
        "SELECT report_group_id FROM minority_events \
         WHERE status IN ('confirmed', 'auto-confirmed') \
         ORDER BY window_start DESC, report_group_id LIMIT 1",
    );
    assert!(
        waiting.is_some() || confirmed.is_some(),
        "no event to decide on"
    );
    for (id, action) in [(waiting, "confirm"), (confirmed, "reject")] {
        let Some(id) = id else { continue };
        runtime()
            .block_on(record(
                &lake,
                &Decision {
                    event_id: &id,
                    action,
                    cause: None,
                    note: "test",
                    decided_by: "analyst-test",
                },
            ))
            .expect("decision");
    }
    let s = run(&lake, &RunOptions::default());
    assert!(s.feed_days_written >= 1, "{s:?}");
    assert_full_rewrite_agrees(&lake, 31);

    // A late correction of one past cell rewrites its day (written with the lake's string
    // types: a file whose columns clash with the others fails the run).
    let ctx = datafusion::prelude::SessionContext::new_with_config(
        mrs_pipeline::session::session_config(),
    );
    runtime().block_on(async {
        ctx.register_parquet(
            "old_sales",
            lake.folder_url("input/sales"),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await
        .expect("sales");
        ctx.sql(&format!(
            "COPY (SELECT retailer_id, store_id, sku, ts, units * 3 + 1 AS units, revenue \
             FROM old_sales WHERE ts = TIMESTAMP '2025-06-10T12:00:00Z' \
             ORDER BY store_id, sku LIMIT 1) \
             TO '{}/input/sales/zz-correction.parquet' STORED AS PARQUET",
            dir.path().display()
        ))
        .await
        .expect("plan")
        .collect()
        .await
        .expect("copy");
    });
    let s = run(&lake, &RunOptions::default());
    assert!((1..31).contains(&s.feed_days_written), "{s:?}");
    assert_full_rewrite_agrees(&lake, 31);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out
}
