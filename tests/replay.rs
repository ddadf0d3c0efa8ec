//! Replaying a lake hour by hour gives the reports of one full run (issue 3), and each of those
//! runs is incremental: it resumes every store from the previous run's detector checkpoint and
//! reads only its look-back.
//!
//! One `tiny` lake is written in steps with `until` (a few coarse steps, then hourly over the
//! last hours) and the pipeline runs after every step; another lake from the same seed is
//! written and run once. The live report ids and their `first_detected_from` must be equal, and
//! the replay must never have retracted a report (causal detection: arrivals never move an
//! existing `first_detected_from`). Then `--full` over the replayed lake must append nothing to
//! any log: the incremental runs wrote exactly what a full recompute writes, and its rewrite
//! of every day of the `protected_sales` feed gives the feed files the hourly runs left.
//!
//! A first run's backfill (slices as of the end of each slice, `mrs_pipeline::Backfill`) rests
//! on the same guarantee and is checked the same way against one pass.

use std::collections::BTreeSet;

mod common;
#[path = "common/state.rs"]
mod state;

use common::query;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use mrs_pipeline::{Backfill, Lake, RunOptions};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
/// First bucket of every synthetic lake (2025-06-02T00:00:00Z) and the `tiny` length.
const START: i64 = 1_748_822_400_000_000;
const TINY_DAYS: i64 = 35;

fn rows(batches: &[RecordBatch]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for b in batches {
        let a = cast(b.column(0), &DataType::Utf8).expect("cast");
        let c = cast(b.column(1), &DataType::Utf8).expect("cast");
        let (a, c) = (a.as_string::<i32>(), c.as_string::<i32>());
        for i in 0..b.num_rows() {
            assert!(!a.is_null(i) && !c.is_null(i), "NULL report id or start");
            out.insert((a.value(i).to_string(), c.value(i).to_string()));
        }
    }
    out
}

/// The seed of every lake here.
const SEED: u64 = 3;

async fn synth(lake: &Lake, until: Option<i64>) {
    common::write_tiny(lake, SEED, until).await;
}

async fn live_reports(lake: &Lake) -> BTreeSet<(String, String)> {
    rows(
        &query(
            lake,
            "SELECT report_id, CAST(window_start AS VARCHAR) FROM minority_reports",
        )
        .await,
    )
}

/// `--full` (one pass, no checkpoint) over a lake appends no report snapshot and rewrites every
/// feed day into the files the lake had.
async fn full_recompute_changes_nothing(lake: &Lake) {
    let feeds = state::feed_files(lake).await;
    let recompute = mrs_pipeline::run(
        lake,
        &RunOptions {
            full: true,
            ..RunOptions::default()
        },
    )
    .await
    .expect("full recompute");
    assert_eq!((recompute.stores_resumed, recompute.slices), (0, 1));
    assert_eq!(
        (
            recompute.reports_new,
            recompute.reports_updated,
            recompute.reports_retracted
        ),
        (0, 0, 0),
        "the runs differ from the full recompute: {recompute:?}"
    );
    assert_eq!(recompute.feed_days_written, TINY_DAYS, "{recompute:?}");
    state::assert_same(&state::feed_files(lake).await, &feeds);
}

#[test]
fn hourly_replay_equals_one_full_run() {
    common::runtime().block_on(async {
        let full_dir = tempfile::tempdir().expect("tempdir");
        let full = common::synth_tiny(full_dir.path(), SEED, None).await;
        mrs_pipeline::run(&full, &RunOptions::default())
            .await
            .expect("full run");
        let expected = live_reports(&full).await;
        assert!(!expected.is_empty(), "the full run found no report");

        let live_dir = tempfile::tempdir().expect("tempdir");
        let live = Lake::open(live_dir.path().to_str().expect("utf-8")).expect("lake");
        let end = START + TINY_DAYS * DAY;
        let mut steps: Vec<i64> = [21, 28, 32, 34]
            .iter()
            .map(|d| START + d * DAY + 13 * HOUR)
            .collect();
        steps.extend((1..=6).rev().map(|h| end - h * HOUR));
        steps.push(end);
        let total_rows = |lake: &Lake| {
            let lake = lake.clone();
            async move {
                let b = query(&lake, "SELECT count(*) FROM sales").await;
                b[0].column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(0)
            }
        };
        for (i, until) in steps.into_iter().enumerate() {
            synth(&live, Some(until)).await;
            let s = mrs_pipeline::run(&live, &RunOptions::default())
                .await
                .unwrap_or_else(|e| panic!("run until {until}: {e}"));
            if i > 0 {
                // every store resumed, reading about four weeks of a longer history
                assert!(s.stores_resumed > 0, "run {i} resumed no store: {s:?}");
                assert!(
                    s.detection_rows < total_rows(&live).await,
                    "run {i} read the whole history: {s:?}"
                );
                // and rewrote only the feed days that can have changed
                assert!(
                    s.feed_days_written < (until - START) / DAY,
                    "run {i} rewrote every feed day: {s:?}"
                );
            }
        }
        let got = live_reports(&live).await;
        let missing: Vec<_> = expected.difference(&got).collect();
        let extra: Vec<_> = got.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "replay differs from the full run: missing {missing:?}, extra {extra:?}"
        );
        let retracted = rows(
            &query(
                &live,
                "SELECT report_id, CAST(window_start AS VARCHAR) \
                 FROM minority_reports_detected_log WHERE status = 'retracted'",
            )
            .await,
        );
        assert!(retracted.is_empty(), "replay retracted {retracted:?}");

        // A full recompute over the replayed lake finds every report already written as it is.
        full_recompute_changes_nothing(&live).await;
    });
}

/// A first run over a long history goes as a backfill (slices as of day 14, 21 and 28, then
/// the rest) and gives the reports of one pass; `--full` afterwards (one pass) finds nothing to
/// change in the reports and rewrites the feed into the same files.
#[test]
fn a_backfill_equals_one_pass() {
    common::runtime().block_on(async {
        let one_dir = tempfile::tempdir().expect("tempdir");
        let one = common::synth_tiny(one_dir.path(), SEED, None).await;
        let s = mrs_pipeline::run(&one, &RunOptions::default())
            .await
            .expect("one pass");
        assert_eq!(
            s.slices, 1,
            "tiny is below the default backfill size: {s:?}"
        );
        let expected = live_reports(&one).await;
        assert!(!expected.is_empty(), "the one pass found no report");

        let dir = tempfile::tempdir().expect("tempdir");
        let lake = common::synth_tiny(dir.path(), SEED, None).await;
        let backfill = RunOptions {
            backfill: Backfill {
                min_rows: 0,
                first_days: 14,
                slice_days: 7,
            },
            ..RunOptions::default()
        };
        let s = mrs_pipeline::run(&lake, &backfill).await.expect("backfill");
        assert_eq!(s.slices, 4, "{s:?}");
        assert!(s.stores_resumed > 0, "no slice resumed a store: {s:?}");
        assert_eq!(s.as_of, Some("2025-07-06T23:00:00Z".into()), "{s:?}");
        assert_eq!(live_reports(&lake).await, expected);
        // Not a first run any more: the same options now run once.
        let again = mrs_pipeline::run(&lake, &backfill).await.expect("rerun");
        assert_eq!(
            (again.slices, again.reports_new, again.reports_updated),
            (1, 0, 0)
        );

        full_recompute_changes_nothing(&lake).await;
    });
}
