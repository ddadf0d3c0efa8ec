//! When an incremental run resumes a store from its detector checkpoint, and when it must
//! detect it from the whole history instead (README "Incremental runs"). Every case ends with
//! `--full` changing no report: whichever way a run went, its detection is that of a full
//! recompute. (Later stages are compared in `tests/replay.rs`; here a changed input may still
//! move cohorts on the next run, whose groups carry over from the previous one by design.)

mod common;

use common::{count, runtime, synth_tiny, write_tiny};
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
